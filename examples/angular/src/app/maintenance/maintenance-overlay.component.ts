import { ChangeDetectionStrategy, Component, computed, inject } from '@angular/core';

import { formatClock, formatRemaining } from './countdown';
import { MaintenanceWindow } from './maintenance.model';
import { MaintenanceService } from './maintenance.service';

/**
 * Everything the kit shows, in one element for the app's root template:
 * the full maintenance screen, the banner before a scheduled window, the read-only notices and
 * the "problem on our side" message. Styles are scoped here so the kit can be copied as it is.
 */
@Component({
  selector: 'mg-maintenance-overlay',
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    @if (upcoming(); as window) {
      <div class="mg-banner mg-upcoming" role="status" data-testid="maintenance-upcoming">
        <strong>Scheduled maintenance</strong> {{ upcomingSummary() }}
        @if (window.message) { <span class="mg-message">{{ window.message }}</span> }
      </div>
    }
    @if (service.readOnly(); as window) {
      <div class="mg-banner mg-read-only" role="status" data-testid="maintenance-read-only">
        <strong>Read-only mode:</strong> {{ readOnlySummary(window) }}
        @if (window.message) { <span class="mg-message">{{ window.message }}</span> }
      </div>
    }
    @if (service.refusedWrite(); as window) {
      <div class="mg-banner mg-refused" role="alert" data-testid="maintenance-refused-write">
        <strong>Your change was not saved:</strong> the site is read-only for maintenance. Please try
        again when it is over.
        <button type="button" (click)="service.dismissRefusedWrite()">Dismiss</button>
      </div>
    }
    @if (service.serverProblem(); as problem) {
      <div class="mg-banner mg-problem" role="alert" data-testid="server-problem">
        @if (problem === 'server') {
          <strong>Sorry, something went wrong on our side.</strong> This is not planned maintenance: we
          are looking into it. Please try again in a moment.
        } @else {
          <strong>We cannot reach the server.</strong> Please check your connection and try again.
        }
        <button type="button" (click)="service.retry()">Try again</button>
      </div>
    }
    @if (service.siteDown(); as window) {
      <div class="mg-screen" role="alert" aria-live="assertive" data-testid="maintenance-screen">
        <div class="mg-card">
          <h1>We'll be back soon</h1>
          <p class="mg-message" data-testid="maintenance-message">
            {{ window.message ?? 'The site is down for maintenance.' }}
          </p>
          <p class="mg-countdown">
            @if (window.endsAt !== null) {
              Back in <span data-testid="maintenance-countdown">{{ remaining(window) }}</span>
              (at {{ clock(window.endsAt) }}).
            } @else {
              Checking again in <span data-testid="maintenance-countdown">{{ remaining(window) }}</span>.
            }
          </p>
          <p class="mg-hint">This page comes back by itself when we are done: no need to reload.</p>
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
    .mg-read-only { background: #e7f0ff; border: 1px solid #7da4e6; }
    .mg-refused { background: #ffe9d6; border: 1px solid #e69a4d; }
    .mg-problem { background: #fde2e2; border: 1px solid #d66; }
    .mg-screen {
      position: fixed; inset: 0; z-index: 1000; display: grid; place-items: center;
      background: rgba(20, 28, 45, 0.92); color: #fff;
    }
    .mg-card { max-width: 32rem; padding: 2rem; text-align: center; }
    .mg-card h1 { margin: 0 0 1rem; font-size: 2rem; }
    .mg-card .mg-message { font-size: 1.2rem; }
    .mg-countdown { font-size: 1.4rem; font-variant-numeric: tabular-nums; }
    .mg-hint { opacity: 0.75; }
  `,
})
export class MaintenanceOverlayComponent {
  protected readonly service = inject(MaintenanceService);

  protected readonly upcoming = this.service.upcoming;

  protected readonly upcomingSummary = computed(() => {
    const window = this.upcoming();
    if (window === null) return '';
    const part = window.scope === null ? '' : `of ${window.scope.join(', ')} `;
    const startsAt = window.startsAt;
    const left = startsAt === null ? 0 : startsAt - this.service.now();
    const starts =
      startsAt === null
        ? 'starts soon'
        : left > 0
          ? `starts in ${formatRemaining(left)} (at ${formatClock(startsAt)})`
          : 'starts any moment now';
    const ends = window.endsAt === null ? '' : ` and should be over at ${formatClock(window.endsAt)}`;
    const readable = window.mode === 'read-only' ? ' You will still be able to browse; changes will wait.' : '';
    return `${part}${starts}${ends}.${readable}`;
  });

  protected readOnlySummary(window: MaintenanceWindow): string {
    const until = window.endsAt === null ? '' : ` until ${formatClock(window.endsAt)} (${this.remaining(window)})`;
    const what = window.scope === null ? 'changes' : `changes under ${window.scope.join(', ')}`;
    return `you can browse, but ${what} cannot be saved${until}.`;
  }

  protected remaining(window: MaintenanceWindow): string {
    const until = window.endsAt ?? window.retryAt;
    return until === null ? 'a few minutes' : formatRemaining(until - this.service.now());
  }

  protected clock(epochMs: number): string {
    return formatClock(epochMs);
  }
}
