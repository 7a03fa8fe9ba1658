import { formatRemaining } from './countdown';
import { MaintenanceWindow } from './model';
import { MaintenanceTexts, WindowFacts } from './texts';

/**
 * A window as the texts take it: times formatted for people, the countdown to its end (else to
 * Retry-After) or, for a window not started yet, to its start; the operator's label, never the
 * raw paths.
 */
export function windowFacts(window: MaintenanceWindow, texts: MaintenanceTexts, now: number, countTo: 'end' | 'start' = 'end'): WindowFacts {
  let remaining: string | null;
  if (countTo === 'start') {
    remaining = window.startsAt !== null && window.startsAt > now ? formatRemaining(window.startsAt - now) : null;
  } else {
    const until = window.endsAt ?? window.retryAt;
    remaining = until === null ? texts.aFewMinutes : formatRemaining(until - now);
  }
  return {
    partial: window.scope !== null,
    label: window.label,
    readOnly: window.mode === 'read-only',
    remaining,
    startsAt: window.startsAt === null ? null : texts.formatTime(window.startsAt),
    endsAt: window.endsAt === null ? null : texts.formatTime(window.endsAt),
  };
}
