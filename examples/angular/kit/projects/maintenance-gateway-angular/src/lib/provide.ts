import { EnvironmentProviders, inject, makeEnvironmentProviders, provideAppInitializer } from '@angular/core';

import { DEFAULT_MAINTENANCE_CONFIG, MAINTENANCE_CONFIG, MaintenanceConfig, MaintenanceOptions } from './config';
import { MaintenanceService } from './maintenance.service';
import { MAINTENANCE_TEXTS, MAINTENANCE_TEXTS_EN } from './texts';

/**
 * The kit's settings and texts, and the status feed polled from the start (in a browser), so the
 * banner before a scheduled window needs no failed request. In a standalone app's providers
 * (app.config.ts) or an NgModule's providers alike:
 *
 *   provideMaintenance({ statusUrl: 'https://api.example.com/_gateway/status' })
 */
export function provideMaintenance(options: MaintenanceOptions): EnvironmentProviders {
  const { texts, statusUrl, ...settings } = options;
  return makeEnvironmentProviders([
    {
      provide: MAINTENANCE_CONFIG,
      useFactory: (): MaintenanceConfig => ({
        ...DEFAULT_MAINTENANCE_CONFIG,
        ...settings,
        statusUrl: typeof statusUrl === 'function' ? statusUrl() : statusUrl,
      }),
    },
    { provide: MAINTENANCE_TEXTS, useValue: { ...MAINTENANCE_TEXTS_EN, ...texts } },
    provideAppInitializer(() => inject(MaintenanceService).start()),
  ]);
}
