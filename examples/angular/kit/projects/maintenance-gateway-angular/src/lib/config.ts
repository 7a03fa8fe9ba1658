import { InjectionToken } from '@angular/core';

import { MaintenanceTexts } from './texts';

export interface MaintenanceConfig {
  /** The gateway's public status feed, e.g. https://api.example.com/_gateway/status. */
  readonly statusUrl: string;
  /**
   * Send the browser's cookies for the gateway's origin with each poll (default true): the
   * staff's bypass cookie is HttpOnly, so only the gateway can tell the kit that this browser is
   * let through. Cross-origin, the gateway must then allow credentials for the app's origin
   * (GATEWAY_CORS_ALLOW_CREDENTIALS, and an allowed origin, never "*").
   */
  readonly withCredentials: boolean;
  /** How often to look for a scheduled window while all is well (the banner before it starts). */
  readonly statusPollSeconds: number;
  /** The first wait between polls while maintenance applies; doubled after each unchanged answer. */
  readonly maintenancePollSeconds: number;
  /** The longest wait between polls (the back-off's cap). */
  readonly maxPollSeconds: number;
}

/**
 * What provideMaintenance() takes: the status feed's address, and any setting or text to change.
 * statusUrl may be a function, run in an injection context when the kit starts, for an address
 * known only at run time: () => `${inject(API_BASE_URL)}/_gateway/status`.
 */
export type MaintenanceOptions = Partial<Omit<MaintenanceConfig, 'statusUrl'>> & {
  readonly statusUrl: string | (() => string);
  readonly texts?: Partial<MaintenanceTexts>;
};

export const DEFAULT_MAINTENANCE_CONFIG: Omit<MaintenanceConfig, 'statusUrl'> = {
  withCredentials: true,
  statusPollSeconds: 60,
  maintenancePollSeconds: 5,
  maxPollSeconds: 60,
};

export const MAINTENANCE_CONFIG = new InjectionToken<MaintenanceConfig>('MAINTENANCE_CONFIG', {
  providedIn: 'root',
  factory: () => {
    throw new Error('maintenance-gateway-angular: add provideMaintenance({ statusUrl }) to the providers of the app');
  },
});
