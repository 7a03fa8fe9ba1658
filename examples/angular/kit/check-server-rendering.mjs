// The packed library under server-side rendering, in Node without a DOM: `node check-server-rendering.mjs`
// (from kit/, after scripts/build-angular.sh; tests/test_angular_library.py runs it).
//
// Every browser global (document, window, navigator, ...) is watched before anything is imported,
// and every timer started: the library's code must touch none of them, at import or when its
// services are built, and the server render must come out whole. Four renders: a standalone app
// (functional interceptor) and an NgModule app (class interceptor), each with maintenance off,
// then with the API answering the gateway's 503 during the render.
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import path from 'node:path';

Error.stackTraceLimit = 60;
const require = createRequire(import.meta.url);
const libraryDir = path.dirname(require.resolve('maintenance-gateway-angular/package.json'));
const touched = [];

/** Whether the code that read a global (or started a timer) is the library's own: the frame
 *  right below the watcher. Angular's own scheduler may read requestAnimationFrame when a signal
 *  the library sets marks a view dirty: that is Angular's business, guarded by Angular. */
function fromLibrary(stack) {
  const caller = stack.split('\n')[2] ?? '';
  return caller.includes(libraryDir) || caller.includes(`${path.sep}maintenance-gateway-angular.mjs`);
}

function shortStack(stack) {
  return stack.split('\n').slice(2, 7).join('\n');
}

const BROWSER_GLOBALS = ['document', 'window', 'navigator', 'location', 'history', 'localStorage', 'sessionStorage', 'self', 'matchMedia', 'requestAnimationFrame', 'getComputedStyle', 'addEventListener'];
for (const name of BROWSER_GLOBALS) {
  const original = Object.getOwnPropertyDescriptor(globalThis, name);
  Object.defineProperty(globalThis, name, {
    configurable: true,
    get() {
      const stack = new Error().stack ?? '';
      if (fromLibrary(stack)) touched.push(`${name}\n${shortStack(stack)}`);
      return original?.get ? original.get.call(globalThis) : original?.value;
    },
  });
}
for (const name of ['setTimeout', 'setInterval']) {
  const original = globalThis[name];
  globalThis[name] = function (...args) {
    const stack = new Error().stack ?? '';
    if (fromLibrary(stack)) touched.push(`${name}()\n${shortStack(stack)}`);
    return original.apply(this, args);
  };
}

// The library is published partially compiled: in Node, the JIT compiler links it.
await import('@angular/compiler');
const { ApplicationRef, Component, NgModule, provideZonelessChangeDetection } = await import('@angular/core');
const { HttpClient, HTTP_INTERCEPTORS, provideHttpClient, withInterceptors, withInterceptorsFromDi } = await import('@angular/common/http');
const { HttpTestingController, provideHttpClientTesting } = await import('@angular/common/http/testing');
const { bootstrapApplication } = await import('@angular/platform-browser');
const { INITIAL_CONFIG, PlatformState, ServerModule, platformServer, provideServerRendering, renderApplication } = await import('@angular/platform-server');
const kit = await import('maintenance-gateway-angular');
assert.deepEqual(touched, [], 'the library touched browser globals when imported');

const DOCUMENT_HTML = '<!doctype html><html><head><title>ssr</title></head><body><app-root></app-root></body></html>';
const TEMPLATE = `
  <mg-maintenance-overlay />
  <mg-maintenance-scope path="/api/checkout/"><p>checkout form</p></mg-maintenance-scope>
  <p>the page</p>
`;
const MAINTENANCE_503 = {
  status: 503,
  statusText: 'Service Unavailable',
  headers: { 'Retry-After': '600' },
};
const maintenanceBody = { error: 'maintenance', message: 'Upgrading the shop.', mode: 'full', retry_after: 600, ends_at: '2030-01-07T10:00:00Z' };

/** Makes one API call during the render and answers it with the gateway's 503. */
function answer503(injector) {
  injector.get(HttpClient).get('https://api.example.com/api/products').subscribe({ error: () => {} });
  injector.get(HttpTestingController).expectOne('https://api.example.com/api/products').flush(maintenanceBody, MAINTENANCE_503);
}

function providers() {
  return [
    provideZonelessChangeDetection(),
    provideHttpClientTesting(),
    kit.provideMaintenance({ statusUrl: 'https://api.example.com/_gateway/status' }),
  ];
}

async function renderStandalone(inMaintenance) {
  class Root {}
  Component({ selector: 'app-root', imports: [kit.MaintenanceOverlayComponent, kit.MaintenanceScopeComponent], template: TEMPLATE })(Root);
  return renderApplication(
    async () => {
      const app = await bootstrapApplication(Root, {
        providers: [provideServerRendering(), provideHttpClient(withInterceptors([kit.maintenanceInterceptor])), ...providers()],
      });
      if (inMaintenance) answer503(app.injector);
      return app;
    },
    { document: DOCUMENT_HTML, url: '/' },
  );
}

async function renderWithNgModule(inMaintenance) {
  class Root {}
  Component({ selector: 'app-root', standalone: false, template: TEMPLATE })(Root);
  class AppServerModule {}
  NgModule({
    declarations: [Root],
    imports: [ServerModule, kit.MaintenanceOverlayComponent, kit.MaintenanceScopeComponent],
    providers: [provideHttpClient(withInterceptorsFromDi()), kit.MAINTENANCE_INTERCEPTOR_PROVIDER, ...providers()],
    bootstrap: [Root],
  })(AppServerModule);
  const platform = platformServer([{ provide: INITIAL_CONFIG, useValue: { document: DOCUMENT_HTML, url: '/' } }]);
  try {
    const moduleRef = await platform.bootstrapModule(AppServerModule);
    const interceptors = moduleRef.injector.get(HTTP_INTERCEPTORS);
    assert.ok(interceptors.some((interceptor) => interceptor instanceof kit.MaintenanceInterceptor), 'the class interceptor is registered');
    if (inMaintenance) answer503(moduleRef.injector);
    await moduleRef.injector.get(ApplicationRef).whenStable();
    return platform.injector.get(PlatformState).renderToString();
  } finally {
    platform.destroy();
  }
}

for (const [name, render] of [['standalone', renderStandalone], ['NgModule', renderWithNgModule]]) {
  const open = await render(false);
  assert.match(open, /<p>the page<\/p>/, `${name}: the page is rendered`);
  assert.match(open, /<p>checkout form<\/p>/, `${name}: the scoped part is rendered`);
  assert.doesNotMatch(open, /data-testid="maintenance-screen"/, `${name}: no overlay outside maintenance`);

  const closed = await render(true);
  assert.match(closed, /data-testid="maintenance-screen"/, `${name}: the 503 seen during the render shows the screen`);
  assert.match(closed, /Upgrading the shop\./, `${name}: with the operator's message`);
  assert.match(closed, /We&#39;ll be back soon|We'll be back soon/, `${name}: in English by default`);
  console.log(`${name}: rendered on the server, with and without maintenance`);
}
assert.deepEqual(touched, [], `the library touched browser globals or started timers on the server:\n${touched.join('\n\n')}`);
console.log('no browser global touched and no timer started by the library');
