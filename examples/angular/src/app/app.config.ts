import { ApplicationConfig, provideBrowserGlobalErrorListeners, provideZonelessChangeDetection } from '@angular/core';
import { provideHttpClient, withFetch, withInterceptors } from '@angular/common/http';

import { maintenanceInterceptor, provideMaintenance } from 'maintenance-gateway-angular';
import { API_BASE_URL } from './shop/shop-api';

/** config.json, served next to index.html; every field but apiBaseUrl is optional. */
export interface RuntimeConfig {
  apiBaseUrl: string;
  statusUrl?: string;
  statusPollSeconds?: number;
  maintenancePollSeconds?: number;
  maxPollSeconds?: number;
}

export async function loadRuntimeConfig(): Promise<RuntimeConfig> {
  const response = await fetch('config.json', { cache: 'no-store' });
  if (!response.ok) throw new Error(`config.json: HTTP ${response.status}`);
  const config = (await response.json()) as RuntimeConfig;
  return { ...config, apiBaseUrl: config.apiBaseUrl.replace(/\/+$/, '') };
}

export function appConfig(runtime: RuntimeConfig): ApplicationConfig {
  return {
    providers: [
      provideBrowserGlobalErrorListeners(),
      provideZonelessChangeDetection(),
      provideHttpClient(withFetch(), withInterceptors([maintenanceInterceptor])),
      provideMaintenance({
        statusUrl: runtime.statusUrl ?? `${runtime.apiBaseUrl}/_gateway/status`,
        ...(runtime.statusPollSeconds !== undefined && { statusPollSeconds: runtime.statusPollSeconds }),
        ...(runtime.maintenancePollSeconds !== undefined && { maintenancePollSeconds: runtime.maintenancePollSeconds }),
        ...(runtime.maxPollSeconds !== undefined && { maxPollSeconds: runtime.maxPollSeconds }),
      }),
      { provide: API_BASE_URL, useValue: runtime.apiBaseUrl },
    ],
  };
}
