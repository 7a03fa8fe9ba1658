/*
 * maintenance-gateway-angular: what an app imports.
 *
 * Standalone app (app.config.ts):
 *   provideHttpClient(withInterceptors([maintenanceInterceptor])),
 *   provideMaintenance({ statusUrl: 'https://api.example.com/_gateway/status' }),
 * NgModule app: provideHttpClient(withInterceptorsFromDi()), MAINTENANCE_INTERCEPTOR_PROVIDER and
 * provideMaintenance(...) in the module's providers. Then <mg-maintenance-overlay /> in the root
 * component's template.
 */
export { DEFAULT_MAINTENANCE_CONFIG, MAINTENANCE_CONFIG, type MaintenanceConfig, type MaintenanceOptions } from './lib/config';
export { formatRemaining } from './lib/countdown';
export { MaintenanceInterceptor, MAINTENANCE_INTERCEPTOR_PROVIDER, isMaintenanceError, maintenanceInterceptor } from './lib/maintenance.interceptor';
export { MaintenanceOverlayComponent } from './lib/maintenance-overlay.component';
export { MaintenanceScopeComponent } from './lib/maintenance-scope.component';
export { MaintenanceService, SKIP_MAINTENANCE_HANDLING, type ServerProblem } from './lib/maintenance.service';
export { maintenanceFrom503, statusFeedFrom, type MaintenanceMode, type MaintenanceWindow, type StatusFeed } from './lib/model';
export { provideMaintenance } from './lib/provide';
export { MAINTENANCE_TEXTS, MAINTENANCE_TEXTS_EN, formatTimeWithDay, type MaintenanceTexts, type WindowFacts } from './lib/texts';
