import { ChangeDetectionStrategy, Component } from '@angular/core';

import { MaintenanceOverlayComponent } from 'maintenance-gateway-angular';
import { ShopComponent } from './shop/shop.component';

@Component({
  selector: 'app-root',
  changeDetection: ChangeDetectionStrategy.OnPush,
  imports: [MaintenanceOverlayComponent, ShopComponent],
  template: `
    <main>
      <mg-maintenance-overlay />
      <app-shop />
    </main>
  `,
  styles: `main { max-width: 44rem; margin: 0 auto; padding: 1.5rem; }`,
})
export class App {}
