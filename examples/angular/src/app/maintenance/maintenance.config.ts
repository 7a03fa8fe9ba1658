import { InjectionToken } from '@angular/core';

export interface MaintenanceConfig {
  /** The gateway's public status feed, e.g. https://api.example.com/_gateway/status. */
  readonly statusUrl: string;
  /** How often to look for a scheduled window while all is well (the banner before it starts). */
  readonly statusPollSeconds: number;
  /** The first wait between polls while maintenance applies; doubled after each unchanged answer. */
  readonly maintenancePollSeconds: number;
  /** The longest wait between polls (the back-off's cap). */
  readonly maxPollSeconds: number;
}

export const DEFAULT_MAINTENANCE_CONFIG: Omit<MaintenanceConfig, 'statusUrl'> = {
  statusPollSeconds: 60,
  maintenancePollSeconds: 5,
  maxPollSeconds: 60,
};

export const MAINTENANCE_CONFIG = new InjectionToken<MaintenanceConfig>('MAINTENANCE_CONFIG');
