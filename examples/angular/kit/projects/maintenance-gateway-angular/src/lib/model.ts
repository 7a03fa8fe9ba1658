/**
 * The gateway's answers, as the front end reads them.
 *
 * The 503 body: {"error": "maintenance", "message", "mode", "retry_after", "ends_at"} (+ "scope",
 * "label" when only part of the site is in maintenance).
 * The status feed (GET /_gateway/status): {"maintenance", "mode", "scope", "label", "message",
 * "starts_at", "ends_at", "upcoming", "retry_after", "bypassed"}.
 * Upstream failures: 502 {"error": "upstream_unavailable"}, 504 {"error": "upstream_timeout"}.
 */

export type MaintenanceMode = 'full' | 'read-only';

/** One maintenance window as the app shows it, from a 503 or from the status feed. */
export interface MaintenanceWindow {
  readonly mode: MaintenanceMode;
  readonly message: string | null;
  /** Path prefixes under maintenance; null when the whole site is. Never shown to users. */
  readonly scope: readonly string[] | null;
  /** What the operator called the part of the site in maintenance ("Checkout"), for users. */
  readonly label: string | null;
  readonly startsAt: number | null;
  readonly endsAt: number | null;
  /** When the gateway suggests asking again (epoch ms), from Retry-After or retry_after. */
  readonly retryAt: number | null;
}

export interface StatusFeed {
  readonly maintenance: boolean;
  readonly upcoming: boolean;
  /** This browser's requests are let through (a bypass cookie or header, a bypass address). */
  readonly bypassed: boolean;
  readonly window: MaintenanceWindow;
}

type Json = Record<string, unknown>;

// As the gateway caps it; a longer text is not the gateway's.
const MAX_LABEL_LENGTH = 100;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function text(value: unknown): string | null {
  return typeof value === 'string' && value.trim() !== '' ? value : null;
}

function instant(value: unknown): number | null {
  if (typeof value !== 'string') return null;
  const parsed = Date.parse(value);
  return Number.isNaN(parsed) ? null : parsed;
}

function seconds(value: unknown): number | null {
  const number = typeof value === 'string' ? Number(value.trim()) : value;
  return typeof number === 'number' && Number.isFinite(number) && number >= 0 ? number : null;
}

function scopeOf(value: unknown): readonly string[] | null {
  if (!Array.isArray(value)) return null;
  const prefixes = value.filter((item): item is string => typeof item === 'string' && item.startsWith('/'));
  return prefixes.length > 0 ? prefixes : null;
}

function labelOf(value: unknown): string | null {
  const label = text(value);
  return label === null ? null : label.trim().slice(0, MAX_LABEL_LENGTH);
}

function windowOf(body: Json, retryAfterHeader: string | null, receivedAt: number): MaintenanceWindow {
  // Retry-After is relative, so it holds whatever the user's clock says; ends_at is absolute
  // and is what the user is told ("back at 10:00").
  const retryAfter = seconds(body['retry_after']) ?? seconds(retryAfterHeader);
  return {
    mode: body['mode'] === 'read-only' ? 'read-only' : 'full',
    message: text(body['message']),
    scope: scopeOf(body['scope']),
    label: labelOf(body['label']),
    startsAt: instant(body['starts_at']),
    endsAt: instant(body['ends_at']),
    retryAt: retryAfter === null ? null : receivedAt + retryAfter * 1000,
  };
}

/** The gateway's maintenance 503, or null for any other answer (a 503 from elsewhere). */
export function maintenanceFrom503(body: unknown, retryAfterHeader: string | null, receivedAt: number): MaintenanceWindow | null {
  const parsed = typeof body === 'string' ? tryParse(body) : body;
  if (!isObject(parsed) || parsed['error'] !== 'maintenance') return null;
  return windowOf(parsed, retryAfterHeader, receivedAt);
}

/** The status feed's body, or null when it is not one (a proxy's error page). */
export function statusFeedFrom(body: unknown, receivedAt: number): StatusFeed | null {
  if (!isObject(body) || typeof body['maintenance'] !== 'boolean') return null;
  return {
    maintenance: body['maintenance'],
    upcoming: body['upcoming'] === true,
    bypassed: body['bypassed'] === true,
    window: windowOf(body, null, receivedAt),
  };
}

/** The gateway's own 502/504: the upstream (the site's server) failed, not maintenance. */
export function isUpstreamFailure(status: number, body: unknown): boolean {
  const parsed = typeof body === 'string' ? tryParse(body) : body;
  if (isObject(parsed) && (parsed['error'] === 'upstream_unavailable' || parsed['error'] === 'upstream_timeout')) return true;
  // A 502/503/504 that is not the gateway's maintenance answer is a server-side failure too.
  return status === 502 || status === 504;
}

/** Whether a URL's path is under one of the scope's prefixes (whole segments, as the gateway matches). */
export function pathIsInScope(path: string, scope: readonly string[] | null): boolean {
  if (scope === null) return true;
  const withSlash = path.endsWith('/') ? path : `${path}/`;
  return scope.some((prefix) => withSlash.startsWith(prefix.endsWith('/') ? prefix : `${prefix}/`));
}

export function sameWindow(a: MaintenanceWindow | null, b: MaintenanceWindow | null): boolean {
  if (a === null || b === null) return a === b;
  return (
    a.mode === b.mode &&
    a.message === b.message &&
    a.label === b.label &&
    a.startsAt === b.startsAt &&
    a.endsAt === b.endsAt &&
    (a.scope ?? []).join(',') === (b.scope ?? []).join(',')
  );
}

function tryParse(body: string): unknown {
  try {
    return JSON.parse(body);
  } catch {
    return null;
  }
}
