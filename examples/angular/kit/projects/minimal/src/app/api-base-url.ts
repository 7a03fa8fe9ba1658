import { InjectionToken } from '@angular/core';

/** The API's address (https://api.example.com), read from config.json when the app starts. */
export const API_BASE_URL = new InjectionToken<string>('API_BASE_URL');
