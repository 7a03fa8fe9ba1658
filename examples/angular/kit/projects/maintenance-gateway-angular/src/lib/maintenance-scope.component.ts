import { ChangeDetectionStrategy, Component, computed, inject, input } from '@angular/core';

import { windowFacts } from './facts';
import { MaintenanceService } from './maintenance.service';
import { MAINTENANCE_TEXTS } from './texts';

/**
 * Wraps the part of a page that talks to one API path. While only that part of the site is down
 * for maintenance (partial maintenance, the gateway's "scope"), it shows the notice instead of the
 * content; the rest of the page keeps working.
 *
 *   <mg-maintenance-scope path="/api/checkout/" label="Checkout"> ...checkout... </mg-maintenance-scope>
 *
 * The notice names the part by this label, else by the label the operator gave the window
 * (`on --paths /api/checkout/ --label Checkout`), else as texts.partOfTheSite; never by its path.
 */
@Component({
  selector: 'mg-maintenance-scope',
  changeDetection: ChangeDetectionStrategy.OnPush,
  template: `
    @if (facts(); as facts) {
      <div class="mg-scope" role="status" data-testid="maintenance-scope">
        <strong>{{ texts.partialDown(facts) }}</strong>
        @if (message(); as message) { <span class="mg-message" data-testid="maintenance-scope-message">{{ message }}</span> }
        @if (texts.partialBackIn(facts); as backIn) { <span class="mg-message" data-testid="maintenance-scope-back">{{ backIn }}</span> }
      </div>
    } @else {
      <ng-content />
    }
  `,
  styles: `
    .mg-scope { display: block; padding: 1rem; border-radius: 6px; background: #fff6d6; border: 1px solid #e6c44d; }
    .mg-message { display: block; margin-top: 0.25rem; }
  `,
})
export class MaintenanceScopeComponent {
  private readonly service = inject(MaintenanceService);
  protected readonly texts = inject(MAINTENANCE_TEXTS);

  /** The API path this part of the page uses, e.g. "/api/checkout/". */
  readonly path = input.required<string>();
  /** What to call this part of the page in the notice (default: the operator's label for the window). */
  readonly label = input<string | null>(null);

  private readonly window = computed(() => (this.service.covers(this.path()) ? this.service.partial() : null));
  protected readonly message = computed(() => this.window()?.message ?? null);

  protected readonly facts = computed(() => {
    const window = this.window();
    if (window === null) return null;
    const facts = windowFacts(window, this.texts, this.service.now());
    return { ...facts, label: this.label() ?? window.label ?? this.texts.partOfTheSite };
  });
}
