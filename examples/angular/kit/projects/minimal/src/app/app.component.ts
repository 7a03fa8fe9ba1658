import { Component, inject } from '@angular/core';
import { HttpClient } from '@angular/common/http';
import { MaintenanceService, isMaintenanceError } from 'maintenance-gateway-angular';

import { API_BASE_URL } from './api-base-url';

@Component({
  selector: 'app-root',
  standalone: false,
  template: `
    <mg-maintenance-overlay />
    <h1>Minimal app</h1>
    <p data-testid="products">{{ products === null ? 'Loading...' : products + ' products' }}</p>
    @if (failed) { <p data-testid="app-error">Something unexpected happened.</p> }
  `,
})
export class AppComponent {
  private readonly http = inject(HttpClient);
  private readonly base = inject(API_BASE_URL);
  protected products: number | null = null;
  protected failed = false;

  constructor() {
    this.load();
    // Maintenance over: fetch the data again, no page reload.
    inject(MaintenanceService).resumed$.subscribe(() => this.load());
  }

  private load(): void {
    this.http.get<{ products: unknown[] }>(`${this.base}/api/products`, { withCredentials: true }).subscribe({
      next: (body) => {
        this.products = body.products.length;
        this.failed = false;
      },
      error: (error: unknown) => (this.failed = !isMaintenanceError(error)),
    });
  }
}
