import { ChangeDetectionStrategy, Component, computed, inject, input } from '@angular/core';

import { formatClock, formatRemaining } from './countdown';
import { MaintenanceService } from './maintenance.service';

/**
 * Wraps the part of a page that talks to one API path. While only that part of the site is down
 * for maintenance (partial maintenance, the gateway's "scope"), it shows the notice instead of the
 * content; the rest of the page keeps working.
 *
 *   <mg-maintenance-scope path="/api/checkout/"> ...checkout... </mg-maintenance-scope>
 */
@Component({
  selector: 'mg-maintenance-scope',
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    @if (window(); as window) {
      <div class="mg-scope" role="status" data-testid="maintenance-scope">
        <strong>{{ label() }} is down for maintenance.</strong>
        @if (window.message) { <span class="mg-message" data-testid="maintenance-scope-message">{{ window.message }}</span> }
        @if (window.endsAt !== null) {
          <span class="mg-message">Back in {{ remaining(window.endsAt) }} (at {{ clock(window.endsAt) }}).</span>
        }
      </div>
    } @else {
      <ng-content />
    }
  `,
  styles: `
    .mg-scope { padding: 1rem; border-radius: 6px; background: #fff6d6; border: 1px solid #e6c44d; }
    .mg-message { display: block; margin-top: 0.25rem; }
  `,
})
export class MaintenanceScopeComponent {
  private readonly service = inject(MaintenanceService);

  /** The API path this part of the page uses, e.g. "/api/checkout/". */
  readonly path = input.required<string>();
  /** What to call this part of the page in the notice. */
  readonly label = input('This part of the site');

  protected readonly window = computed(() => (this.service.covers(this.path()) ? this.service.partial() : null));

  protected remaining(endsAt: number): string {
    return formatRemaining(endsAt - this.service.now());
  }

  protected clock(epochMs: number): string {
    return formatClock(epochMs);
  }
}
