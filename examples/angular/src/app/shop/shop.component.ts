import { ChangeDetectionStrategy, Component, DestroyRef, inject, signal } from '@angular/core';
import { takeUntilDestroyed } from '@angular/core/rxjs-interop';

import { MaintenanceScopeComponent, MaintenanceService, isMaintenanceError } from 'maintenance-gateway-angular';
import { CheckoutSummary, Product, ShopApi } from './shop-api';

/** The example shop: a catalogue (reads), a cart (a write) and a checkout (its own API path). */
@Component({
  selector: 'app-shop',
  changeDetection: ChangeDetectionStrategy.OnPush,
  imports: [MaintenanceScopeComponent],
  template: `
    <h1>Example shop</h1>
    @if (error()) { <p class="error" data-testid="app-error">{{ error() }}</p> }

    <section>
      <h2>Catalogue <small data-testid="cart-count">(cart: {{ cartItems() }})</small></h2>
      <ul data-testid="product-list">
        @for (product of products(); track product.id) {
          <li data-testid="product">
            <span>{{ product.name }}</span> <span class="price">{{ product.price }}</span>
            <button type="button" data-testid="add-to-cart" (click)="addToCart(product)">Add to cart</button>
          </li>
        }
      </ul>
    </section>

    <section>
      <h2>Checkout</h2>
      <mg-maintenance-scope path="/api/checkout/">
        @if (summary(); as summary) {
          <p data-testid="checkout-summary">{{ summary.items }} items, {{ summary.total }}</p>
        }
        <button type="button" data-testid="place-order" (click)="placeOrder()">Place order</button>
        @if (order()) { <p data-testid="order">Order {{ order() }} placed.</p> }
      </mg-maintenance-scope>
    </section>
  `,
  styles: `
    ul { list-style: none; padding: 0; }
    li { display: flex; gap: 0.75rem; align-items: center; padding: 0.4rem 0; border-bottom: 1px solid #dde1ea; }
    li span:first-child { flex: 1; }
    .error { color: #a11; }
  `,
})
export class ShopComponent {
  private readonly api = inject(ShopApi);
  private readonly destroyRef = inject(DestroyRef);

  protected readonly products = signal<Product[]>([]);
  protected readonly summary = signal<CheckoutSummary | null>(null);
  protected readonly cartItems = signal(0);
  protected readonly order = signal<string | null>(null);
  protected readonly error = signal<string | null>(null);

  constructor() {
    this.load();
    // Maintenance over (or "Try again"): fetch the data again, no page reload.
    inject(MaintenanceService).resumed$.pipe(takeUntilDestroyed()).subscribe(() => this.load());
  }

  protected addToCart(product: Product): void {
    this.api.addToCart(product.id).pipe(takeUntilDestroyed(this.destroyRef)).subscribe({
      next: () => this.cartItems.update((items) => items + 1),
      error: (error: unknown) => this.fail(error),
    });
  }

  protected placeOrder(): void {
    this.api.placeOrder().pipe(takeUntilDestroyed(this.destroyRef)).subscribe({
      next: (placed) => this.order.set(placed.order),
      error: (error: unknown) => this.fail(error),
    });
  }

  private load(): void {
    this.error.set(null);
    this.api.products().pipe(takeUntilDestroyed(this.destroyRef)).subscribe({
      next: (body) => this.products.set(body.products),
      error: (error: unknown) => this.fail(error),
    });
    this.api.checkout().pipe(takeUntilDestroyed(this.destroyRef)).subscribe({
      next: (summary) => this.summary.set(summary),
      error: (error: unknown) => this.fail(error),
    });
  }

  /** Errors the maintenance kit shows itself are not repeated here. */
  private fail(error: unknown): void {
    if (!isMaintenanceError(error)) this.error.set('Something unexpected happened. Please try again.');
  }
}
