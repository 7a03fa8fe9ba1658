import { ChangeDetectionStrategy, Component, inject } from '@angular/core';

import { windowFacts } from './facts';
import { MaintenanceWindow } from './model';
import { MaintenanceService } from './maintenance.service';
import { MAINTENANCE_TEXTS, WindowFacts } from './texts';

/**
 * Everything the kit shows, in one element for the app's root template: the full maintenance
 * screen, the banner before a scheduled window, the read-only notices, the note for staff who are
 * let through, and the "problem on our side" message. Styles are scoped to this component.
 */
@Component({
  selector: 'mg-maintenance-overlay',
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    @if (upcoming(); as window) {
      <div class="mg-banner mg-upcoming" role="status" data-testid="maintenance-upcoming">
        <strong>{{ texts.upcomingTitle }}</strong> {{ texts.upcoming(facts(window, 'start')) }}
        @if (window.message) { <span class="mg-message">{{ window.message }}</span> }
      </div>
    }
    @if (service.bypassed(); as window) {
      <div class="mg-banner mg-bypassed" role="status" data-testid="maintenance-bypassed">
        <strong>{{ texts.bypassedTitle }}</strong> {{ texts.bypassed(facts(window)) }}
      </div>
    }
    @if (service.readOnly(); as window) {
      <div class="mg-banner mg-read-only" role="status" data-testid="maintenance-read-only">
        <strong>{{ texts.readOnlyTitle }}</strong> {{ texts.readOnly(facts(window)) }}
        @if (window.message) { <span class="mg-message">{{ window.message }}</span> }
      </div>
    }
    @if (service.refusedWrite()) {
      <div class="mg-banner mg-refused" role="alert" data-testid="maintenance-refused-write">
        <strong>{{ texts.refusedWriteTitle }}</strong> {{ texts.refusedWrite }}
        <button type="button" (click)="service.dismissRefusedWrite()">{{ texts.dismiss }}</button>
      </div>
    }
    @if (service.serverProblem(); as problem) {
      <div class="mg-banner mg-problem" role="alert" data-testid="server-problem">
        @if (problem === 'server') {
          <strong>{{ texts.serverProblemTitle }}</strong> {{ texts.serverProblem }}
        } @else {
          <strong>{{ texts.networkProblemTitle }}</strong> {{ texts.networkProblem }}
        }
        <button type="button" (click)="service.retry()">{{ texts.tryAgain }}</button>
      </div>
    }
    @if (service.siteDown(); as window) {
      <div class="mg-screen" role="alert" aria-live="assertive" data-testid="maintenance-screen">
        <div class="mg-card">
          <h1>{{ texts.screenTitle }}</h1>
          <p class="mg-message" data-testid="maintenance-message">{{ window.message ?? texts.screenMessage }}</p>
          <p class="mg-countdown" data-testid="maintenance-countdown">{{ texts.screenBackIn(facts(window)) }}</p>
          <p class="mg-hint">{{ texts.screenHint }}</p>
        </div>
      </div>
    }
  `,
  styles: `
    :host { display: contents; }
    .mg-banner { padding: 0.75rem 1rem; margin: 0 0 0.5rem; border-radius: 6px; line-height: 1.4; }
    .mg-banner button { margin-left: 0.75rem; }
    .mg-message { display: block; margin-top: 0.25rem; }
    .mg-upcoming { background: #fff6d6; border: 1px solid #e6c44d; }
    .mg-bypassed { background: #efe7ff; border: 1px solid #9b7de6; }
    .mg-read-only { background: #e7f0ff; border: 1px solid #7da4e6; }
    .mg-refused { background: #ffe9d6; border: 1px solid #e69a4d; }
    .mg-problem { background: #fde2e2; border: 1px solid #d66; }
    .mg-screen {
      position: fixed; inset: 0; z-index: 1000; display: grid; place-items: center;
      background: rgba(20, 28, 45, 0.92); color: #fff;
    }
    .mg-card { max-width: 34rem; padding: 2rem; text-align: center; }
    .mg-card h1 { margin: 0 0 1rem; font-size: 2rem; }
    .mg-card .mg-message { font-size: 1.2rem; }
    .mg-countdown { font-size: 1.3rem; font-variant-numeric: tabular-nums; }
    .mg-hint { opacity: 0.75; }
  `,
})
export class MaintenanceOverlayComponent {
  protected readonly service = inject(MaintenanceService);
  protected readonly texts = inject(MAINTENANCE_TEXTS);
  protected readonly upcoming = this.service.upcoming;

  /** What the texts are made of, as of the service's clock (so the countdowns tick). */
  protected facts(window: MaintenanceWindow, countTo: 'end' | 'start' = 'end'): WindowFacts {
    return windowFacts(window, this.texts, this.service.now(), countTo);
  }
}
