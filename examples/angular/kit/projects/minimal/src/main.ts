import { platformBrowser } from '@angular/platform-browser';

import { API_BASE_URL } from './app/api-base-url';
import { AppModule } from './app/app.module';

// The API's address is read at run time (config.json next to index.html), so one build serves
// every environment.
fetch('config.json', { cache: 'no-store' })
  .then((response) => response.json() as Promise<{ apiBaseUrl: string }>)
  .then((config) => platformBrowser([{ provide: API_BASE_URL, useValue: config.apiBaseUrl }]).bootstrapModule(AppModule))
  .catch((error: unknown) => console.error(error));
