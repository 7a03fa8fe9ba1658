import {
  HTTP_INTERCEPTORS,
  HttpErrorResponse,
  HttpEvent,
  HttpHandler,
  HttpInterceptor,
  HttpInterceptorFn,
  HttpRequest,
  HttpResponse,
} from '@angular/common/http';
import { Injectable, Provider, inject } from '@angular/core';
import { Observable, catchError, tap, throwError } from 'rxjs';

import { isUpstreamFailure, maintenanceFrom503 } from './model';
import { MaintenanceService, SKIP_MAINTENANCE_HANDLING } from './maintenance.service';

/**
 * Reads the gateway's answers on every API call:
 * - 503 {"error": "maintenance"}: the maintenance screen (whole site), the read-only notice (a
 *   refused write) or the partial notice (scope), with the countdown from Retry-After/ends_at;
 * - 502/504 (the gateway's upstream_unavailable/upstream_timeout): "a problem on our side";
 * - status 0 (no answer at all: the network, or a preflight the site's server did not answer):
 *   "a problem on our side" when the gateway's status feed answers, else "cannot reach the server".
 * The error still reaches the caller, so its own loading state ends; isMaintenanceError() lets it
 * stay quiet about errors this kit already shows.
 */
function watch(request: HttpRequest<unknown>, events: Observable<HttpEvent<unknown>>, maintenance: MaintenanceService): Observable<HttpEvent<unknown>> {
  return events.pipe(
    tap((event) => {
      if (event instanceof HttpResponse) maintenance.noteSuccess();
    }),
    catchError((error: unknown) => {
      if (error instanceof HttpErrorResponse) {
        if (error.status === 503) {
          const window = maintenanceFrom503(error.error, error.headers.get('Retry-After'), Date.now());
          if (window !== null) {
            maintenance.noteMaintenance(window, request.method);
            return throwError(() => error);
          }
        }
        if (error.status === 0) {
          maintenance.noteNoAnswer();
        } else if (error.status >= 500 && isUpstreamFailure(error.status, error.error)) {
          maintenance.noteServerProblem('server');
        }
      }
      return throwError(() => error);
    }),
  );
}

/** For standalone apps: provideHttpClient(withInterceptors([maintenanceInterceptor])). */
export const maintenanceInterceptor: HttpInterceptorFn = (request, next) => {
  if (request.context.get(SKIP_MAINTENANCE_HANDLING)) return next(request);
  return watch(request, next(request), inject(MaintenanceService));
};

/** The same, as a class for HTTP_INTERCEPTORS (NgModule apps): see MAINTENANCE_INTERCEPTOR_PROVIDER. */
@Injectable()
export class MaintenanceInterceptor implements HttpInterceptor {
  private readonly maintenance = inject(MaintenanceService);

  intercept(request: HttpRequest<unknown>, next: HttpHandler): Observable<HttpEvent<unknown>> {
    if (request.context.get(SKIP_MAINTENANCE_HANDLING)) return next.handle(request);
    return watch(request, next.handle(request), this.maintenance);
  }
}

/**
 * For apps whose interceptors are classes: in the NgModule's providers, beside
 * provideHttpClient(withInterceptorsFromDi()) (or HttpClientModule).
 */
export const MAINTENANCE_INTERCEPTOR_PROVIDER: Provider = {
  provide: HTTP_INTERCEPTORS,
  useClass: MaintenanceInterceptor,
  multi: true,
};

/** Whether an HTTP error is one the kit already shows (maintenance or a server problem). */
export function isMaintenanceError(error: unknown): boolean {
  if (!(error instanceof HttpErrorResponse)) return false;
  if (error.status === 503 && maintenanceFrom503(error.error, null, 0) !== null) return true;
  return error.status === 0 || isUpstreamFailure(error.status, error.error);
}
