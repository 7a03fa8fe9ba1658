import { NgModule, inject } from '@angular/core';
import { BrowserModule } from '@angular/platform-browser';
import { provideHttpClient, withInterceptorsFromDi } from '@angular/common/http';
import { MAINTENANCE_INTERCEPTOR_PROVIDER, MaintenanceOverlayComponent, provideMaintenance } from 'maintenance-gateway-angular';

import { API_BASE_URL } from './api-base-url';
import { AppComponent } from './app.component';

/** An NgModule app with zone.js and class-based interceptors: the kit as the README adds it. */
@NgModule({
  declarations: [AppComponent],
  imports: [BrowserModule, MaintenanceOverlayComponent],
  providers: [
    provideHttpClient(withInterceptorsFromDi()),
    MAINTENANCE_INTERCEPTOR_PROVIDER,
    provideMaintenance({
      statusUrl: () => `${inject(API_BASE_URL)}/_gateway/status`,
      // Any text can be replaced; the others stay English.
      texts: { screenTitle: 'Back soon!' },
    }),
  ],
  bootstrap: [AppComponent],
})
export class AppModule {}
