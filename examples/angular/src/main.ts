import { bootstrapApplication } from '@angular/platform-browser';

import { App } from './app/app';
import { appConfig, loadRuntimeConfig } from './app/app.config';

// The API's address is read at run time (config.json next to index.html), so one build serves
// every environment.
loadRuntimeConfig()
  .then((runtime) => bootstrapApplication(App, appConfig(runtime)))
  .catch((error: unknown) => console.error(error));
