import { DestroyRef, Injectable, PLATFORM_ID, computed, inject, signal } from '@angular/core';
import { DOCUMENT, isPlatformBrowser } from '@angular/common';
import { HttpClient, HttpContext, HttpContextToken } from '@angular/common/http';
import { Observable, Subject, Subscription } from 'rxjs';

import { MAINTENANCE_CONFIG } from './config';
import { MaintenanceWindow, pathIsInScope, sameWindow, statusFeedFrom } from './model';

/** Set on a request the maintenance interceptor must leave alone (the status feed's own polls). */
export const SKIP_MAINTENANCE_HANDLING = new HttpContextToken<boolean>(() => false);

/** Methods the gateway lets through in read-only maintenance (RFC 9110's safe methods). */
const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE']);

// The feed may be served from the browser's cache for a second (Cache-Control: max-age=1), and
// each gateway task refreshes its state on its own: an "all clear" that arrives right after a 503
// may predate it, so it is not believed until this long after the 503.
const FEED_AFTER_503_GRACE_MS = 2500;
// Ask again just after an announced moment (a start or an end), not before it.
const AFTER_MOMENT_MS = 300;
const MIN_POLL_MS = 200;

export type ServerProblem = 'server' | 'network';

/**
 * What the app knows about maintenance: filled by the interceptor (a 503, a 502/504) and by
 * polling the gateway's status feed, which also brings the banner before a scheduled window, the
 * news that maintenance is over, and whether this browser is let through (staff).
 *
 * Nothing here touches the DOM or starts a timer outside a browser: under server-side rendering
 * the service keeps its empty state, so the server renders the page, never the overlay.
 */
@Injectable({ providedIn: 'root' })
export class MaintenanceService {
  private readonly http = inject(HttpClient);
  private readonly config = inject(MAINTENANCE_CONFIG);
  private readonly document = inject(DOCUMENT);
  private readonly inBrowser = isPlatformBrowser(inject(PLATFORM_ID));

  /** The maintenance that applies now: the whole site, read-only, or part of the site. */
  readonly active = signal<MaintenanceWindow | null>(null);
  /** A window that is scheduled but has not started. */
  readonly upcoming = signal<MaintenanceWindow | null>(null);
  /** Maintenance applies, but this browser's requests are let through: it sees the site. */
  readonly bypassed = signal<MaintenanceWindow | null>(null);
  /** Set when the gateway refused a write because the site is read-only. */
  readonly refusedWrite = signal<MaintenanceWindow | null>(null);
  /** The site's own server failed (the gateway's 502/504), or the gateway could not be reached. */
  readonly serverProblem = signal<ServerProblem | null>(null);
  /** The clock the countdowns read; ticks each second while one is shown. */
  readonly now = signal(Date.now());

  /** The whole site is down for maintenance: the full screen. */
  readonly siteDown = computed(() => {
    const window = this.active();
    return window !== null && window.mode === 'full' && window.scope === null ? window : null;
  });
  readonly readOnly = computed(() => {
    const window = this.active();
    return window !== null && window.mode === 'read-only' ? window : null;
  });
  /** Only part of the site (window.scope) is down for maintenance. */
  readonly partial = computed(() => {
    const window = this.active();
    return window !== null && window.mode === 'full' && window.scope !== null ? window : null;
  });

  private readonly resumedSubject = new Subject<void>();
  /** Emits when the app should fetch its data again: maintenance ended, or the user asked to retry. */
  readonly resumed$: Observable<void> = this.resumedSubject.asObservable();

  private started = false;
  private pollTimer: ReturnType<typeof setTimeout> | undefined;
  private clockTimer: ReturnType<typeof setInterval> | undefined;
  private inFlight: Subscription | null = null;
  private probe: Subscription | null = null;
  private unchangedPolls = 0;
  private last503At = 0;

  constructor() {
    inject(DestroyRef).onDestroy(() => this.stop());
  }

  /** Starts polling the status feed (provideMaintenance() calls this when the app starts);
   *  does nothing outside a browser. */
  start(): void {
    if (this.started || !this.inBrowser) return;
    this.started = true;
    this.document.addEventListener('visibilitychange', this.pollWhenVisible);
    this.poll();
  }

  stop(): void {
    if (this.started) this.document.removeEventListener('visibilitychange', this.pollWhenVisible);
    this.started = false;
    clearTimeout(this.pollTimer);
    clearInterval(this.clockTimer);
    this.clockTimer = undefined;
    this.inFlight?.unsubscribe();
    this.probe?.unsubscribe();
  }

  /** Whether a path of the API (e.g. "/api/checkout/") is under partial maintenance now. */
  covers(path: string): boolean {
    const window = this.partial();
    return window !== null && pathIsInScope(path, window.scope);
  }

  /** The interceptor saw the gateway's maintenance 503 for this request. */
  noteMaintenance(window: MaintenanceWindow, method: string): void {
    const changed = !sameWindow(this.active(), window);
    this.last503At = Date.now();
    this.active.set(window);
    this.upcoming.set(null);
    // Refused, so not (or no longer) let through: a bypass cookie expired, say.
    this.bypassed.set(null);
    if (window.mode === 'read-only' && !SAFE_METHODS.has(method.toUpperCase())) {
      this.refusedWrite.set(window);
    }
    this.syncClock();
    if (changed) {
      this.unchangedPolls = 0;
      this.schedule();
    }
  }

  noteServerProblem(problem: ServerProblem): void {
    this.serverProblem.set(problem);
  }

  /**
   * A call got no answer at all (status 0). Browsers report a failed CORS preflight that way too,
   * and outside maintenance the gateway passes preflights on to the site's server: when that
   * server is down, a preflighted call fails without a status. The status feed needs no preflight
   * (a simple GET): if the gateway answers it, the failure is on the server side, not the user's
   * network.
   */
  noteNoAnswer(): void {
    this.probe?.unsubscribe();
    this.probe = this.fetchFeed().subscribe({
      next: (body) => {
        const feed = statusFeedFrom(body, Date.now());
        // In maintenance the kit's own screen or notice says it all (a preflight the gateway
        // refused, e.g. a header missing from GATEWAY_CORS_ALLOW_HEADERS, ends up here too).
        if (feed === null || !feed.maintenance || feed.bypassed) this.serverProblem.set(feed === null ? 'network' : 'server');
        this.applyFeed(body);
      },
      error: () => this.serverProblem.set('network'),
    });
  }

  /** An API call succeeded: whatever failed on the server side works again. */
  noteSuccess(): void {
    if (this.serverProblem() !== null) this.serverProblem.set(null);
  }

  /** The user asked to try again after a server problem. */
  retry(): void {
    this.serverProblem.set(null);
    this.resumedSubject.next();
  }

  dismissRefusedWrite(): void {
    this.refusedWrite.set(null);
  }

  private readonly pollWhenVisible = (): void => {
    if (this.document.visibilityState === 'visible') this.poll();
  };

  private fetchFeed(): Observable<unknown> {
    // A simple GET (no custom header, so no preflight). With credentials, the gateway sees the
    // staff's HttpOnly bypass cookie and answers "bypassed": true for this browser alone.
    return this.http.get<unknown>(this.config.statusUrl, { context: skipContext(), withCredentials: this.config.withCredentials });
  }

  private poll(): void {
    clearTimeout(this.pollTimer);
    this.inFlight?.unsubscribe();
    this.inFlight = this.fetchFeed().subscribe({
      next: (body) => this.applyFeed(body),
      error: () => this.feedFailed(),
    });
  }

  private applyFeed(body: unknown): void {
    const feed = statusFeedFrom(body, Date.now());
    if (feed === null) {
      this.feedFailed();
      return;
    }
    const active = this.active();
    if (feed.maintenance && feed.bypassed) {
      // Staff: the site works for this browser, so it is shown, with a note that it is closed to others.
      this.bypassed.set(feed.window);
      this.upcoming.set(null);
      if (active !== null) this.end();
    } else if (feed.maintenance) {
      this.bypassed.set(null);
      this.unchangedPolls = sameWindow(active, feed.window) ? this.unchangedPolls + 1 : 0;
      this.active.set(feed.window);
      this.upcoming.set(null);
    } else {
      this.bypassed.set(null);
      if (active !== null && Date.now() - this.last503At < FEED_AFTER_503_GRACE_MS) {
        this.unchangedPolls += 1;
      } else if (active !== null) {
        this.end();
      }
      this.upcoming.set(feed.upcoming ? feed.window : null);
    }
    this.syncClock();
    this.schedule();
  }

  private feedFailed(): void {
    // Keep what is shown; ask again later, backing off like any unchanged answer.
    this.unchangedPolls += 1;
    this.schedule();
  }

  /** Maintenance is over (or no longer applies to this browser): everything back without a reload. */
  private end(): void {
    this.active.set(null);
    this.refusedWrite.set(null);
    this.unchangedPolls = 0;
    this.resumedSubject.next();
  }

  private schedule(): void {
    if (!this.started) return;
    clearTimeout(this.pollTimer);
    this.pollTimer = setTimeout(() => this.poll(), this.nextDelay());
  }

  /** Back-off while maintenance applies (or a scheduled start has passed on this clock), the
   *  relaxed interval otherwise, and never later than just after an announced start or end. */
  private nextDelay(): number {
    const now = Date.now();
    const active = this.active();
    const upcoming = this.upcoming();
    const bypassed = this.bypassed();
    const waiting = active !== null || (upcoming?.startsAt != null && upcoming.startsAt <= now);
    const backOff = this.config.maintenancePollSeconds * 1000 * 2 ** Math.min(this.unchangedPolls, 16);
    let delay = waiting ? Math.min(backOff, this.config.maxPollSeconds * 1000) : this.config.statusPollSeconds * 1000;
    const moments = [active?.endsAt ?? active?.retryAt, upcoming?.startsAt, bypassed?.endsAt];
    for (const moment of moments) {
      if (moment != null && moment > now) delay = Math.min(delay, moment - now + AFTER_MOMENT_MS);
    }
    return Math.max(delay, MIN_POLL_MS);
  }

  private syncClock(): void {
    this.now.set(Date.now());
    if (!this.inBrowser) return;
    const counting = this.active() !== null || this.upcoming() !== null;
    if (counting && this.clockTimer === undefined) {
      this.clockTimer = setInterval(() => this.now.set(Date.now()), 1000);
    } else if (!counting && this.clockTimer !== undefined) {
      clearInterval(this.clockTimer);
      this.clockTimer = undefined;
    }
  }
}

function skipContext(): HttpContext {
  return new HttpContext().set(SKIP_MAINTENANCE_HANDLING, true);
}
