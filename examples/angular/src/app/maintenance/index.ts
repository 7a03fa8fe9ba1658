/**
 * The maintenance kit: copy this folder into an Angular app, then
 *
 *   provideHttpClient(withInterceptors([maintenanceInterceptor])),
 *   provideMaintenance({ statusUrl: 'https://api.example.com/_gateway/status' }),
 *
 * and put <mg-maintenance-overlay /> in the root component's template.
 */
import { EnvironmentProviders, inject, makeEnvironmentProviders, provideAppInitializer } from '@angular/core';

import { DEFAULT_MAINTENANCE_CONFIG, MAINTENANCE_CONFIG, MaintenanceConfig } from './maintenance.config';
import { MaintenanceService } from './maintenance.service';

export { MAINTENANCE_CONFIG, type MaintenanceConfig } from './maintenance.config';
export { isMaintenanceError, maintenanceInterceptor } from './maintenance.interceptor';
export type { MaintenanceMode, MaintenanceWindow } from './maintenance.model';
export { MaintenanceOverlayComponent } from './maintenance-overlay.component';
export { MaintenanceScopeComponent } from './maintenance-scope.component';
export { MaintenanceService, SKIP_MAINTENANCE_HANDLING, type ServerProblem } from './maintenance.service';

export function provideMaintenance(config: Partial<MaintenanceConfig> & Pick<MaintenanceConfig, 'statusUrl'>): EnvironmentProviders {
  return makeEnvironmentProviders([
    { provide: MAINTENANCE_CONFIG, useValue: { ...DEFAULT_MAINTENANCE_CONFIG, ...config } },
    // Poll from the start: the banner before a scheduled window needs no failed request.
    provideAppInitializer(() => inject(MaintenanceService).start()),
  ]);
}
