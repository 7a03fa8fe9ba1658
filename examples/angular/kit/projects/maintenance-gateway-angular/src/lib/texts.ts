import { InjectionToken } from '@angular/core';

/** What the sentences about a maintenance window are built from (times already formatted). */
export interface WindowFacts {
  /** Only part of the site is concerned (the gateway's scope). */
  readonly partial: boolean;
  /** The operator's name for that part ("Checkout"), or null; raw API paths are never shown. */
  readonly label: string | null;
  readonly readOnly: boolean;
  /**
   * "4:59", "1:02:03": what is left until the end (or until the gateway's Retry-After; the
   * aFewMinutes text without either), or for an upcoming window until its start (null once the
   * start has passed on this clock).
   */
  readonly remaining: string | null;
  /** The start, with the day, in the user's locale ("Monday 7 December at 22:00 CET"), or null. */
  readonly startsAt: string | null;
  /** The end, formatted like startsAt, or null when no end is announced. */
  readonly endsAt: string | null;
}

/**
 * Every text the kit shows. Replace any of them with provideMaintenance({ texts: { ... } }) (or
 * provide MAINTENANCE_TEXTS yourself); the rest keep the English defaults below. Sentences are
 * functions, so a translation can put the parts in its own order, or call the app's i18n library.
 */
export interface MaintenanceTexts {
  /** Formats an instant (epoch ms) for people; the default uses the browser's locale and zone. */
  readonly formatTime: (epochMs: number) => string;
  /** Said instead of a countdown when the gateway gave no time at all. */
  readonly aFewMinutes: string;

  readonly screenTitle: string;
  /** The screen's text when the operator gave no message. */
  readonly screenMessage: string;
  readonly screenBackIn: (facts: WindowFacts) => string;
  readonly screenHint: string;

  readonly upcomingTitle: string;
  readonly upcoming: (facts: WindowFacts) => string;

  readonly readOnlyTitle: string;
  readonly readOnly: (facts: WindowFacts) => string;
  readonly refusedWriteTitle: string;
  readonly refusedWrite: string;
  readonly dismiss: string;

  /** The part of a page wrapped in <mg-maintenance-scope>, when neither it nor the operator named it. */
  readonly partOfTheSite: string;
  readonly partialDown: (facts: WindowFacts) => string;
  readonly partialBackIn: (facts: WindowFacts) => string;

  /** Shown to staff whose requests pass maintenance (a bypass cookie, header or address). */
  readonly bypassedTitle: string;
  readonly bypassed: (facts: WindowFacts) => string;

  readonly serverProblemTitle: string;
  readonly serverProblem: string;
  readonly networkProblemTitle: string;
  readonly networkProblem: string;
  readonly tryAgain: string;
}

// One formatter, made on first use (Intl reads the browser's locale and time zone then).
let defaultFormat: Intl.DateTimeFormat | null = null;

/** "Monday, December 7 at 10:00 PM GMT+1" (en-US), "Montag, 7. Dezember um 22:00 MEZ" (de-DE). */
export function formatTimeWithDay(epochMs: number): string {
  defaultFormat ??= new Intl.DateTimeFormat(undefined, {
    weekday: 'long',
    day: 'numeric',
    month: 'long',
    hour: 'numeric',
    minute: '2-digit',
    timeZoneName: 'short',
  });
  return defaultFormat.format(epochMs);
}

function part(facts: WindowFacts, fallback: string): string {
  return facts.label ?? fallback;
}

export const MAINTENANCE_TEXTS_EN: MaintenanceTexts = {
  formatTime: formatTimeWithDay,
  aFewMinutes: 'a few minutes',

  screenTitle: "We'll be back soon",
  screenMessage: 'The site is down for maintenance.',
  screenBackIn: (facts) =>
    facts.endsAt !== null ? `Back in ${facts.remaining}, on ${facts.endsAt}.` : `Checking again in ${facts.remaining}.`,
  screenHint: 'This page comes back by itself when we are done: no need to reload.',

  upcomingTitle: 'Scheduled maintenance',
  upcoming: (facts) => {
    const what = facts.partial ? `of ${part(facts, 'part of the site')} ` : '';
    const starts =
      facts.startsAt === null
        ? 'starts soon'
        : facts.remaining !== null
          ? `starts in ${facts.remaining}, on ${facts.startsAt}`
          : 'starts any moment now';
    const ends = facts.endsAt === null ? '' : `, and should be over on ${facts.endsAt}`;
    const readOnly = facts.readOnly
      ? ` You will still be able to browse, but ${facts.partial ? 'changes there' : 'changes'} will be refused while it lasts: nothing you send then is saved.`
      : '';
    return `${what}${starts}${ends}.${readOnly}`;
  },

  readOnlyTitle: 'Read-only mode:',
  readOnly: (facts) => {
    const what = facts.partial ? `changes to ${part(facts, 'part of the site')}` : 'changes';
    const until = facts.endsAt === null ? '' : ` until ${facts.endsAt} (${facts.remaining})`;
    return `you can browse, but ${what} cannot be saved${until}.`;
  },
  refusedWriteTitle: 'Your change was not saved:',
  refusedWrite: 'the site is read-only for maintenance. Please try again when it is over.',
  dismiss: 'Dismiss',

  partOfTheSite: 'This part of the site',
  partialDown: (facts) => `${part(facts, 'This part of the site')} is down for maintenance.`,
  partialBackIn: (facts) => (facts.endsAt === null ? '' : `Back in ${facts.remaining}, on ${facts.endsAt}.`),

  bypassedTitle: 'Maintenance is on:',
  bypassed: (facts) => {
    const what = facts.partial ? `${part(facts, 'part of the site')} is` : 'the site is';
    const until = facts.endsAt === null ? '' : ` until ${facts.endsAt}`;
    return `${what} closed to visitors${until}. You see it because this browser is let through (bypass).`;
  },

  serverProblemTitle: 'Sorry, something went wrong on our side.',
  serverProblem: 'This is not planned maintenance: we are looking into it. Please try again in a moment.',
  networkProblemTitle: 'We cannot reach the server.',
  networkProblem: 'Please check your connection and try again.',
  tryAgain: 'Try again',
};

/** The texts the kit shows; English unless the app provides its own (see MaintenanceTexts). */
export const MAINTENANCE_TEXTS = new InjectionToken<MaintenanceTexts>('MAINTENANCE_TEXTS', {
  providedIn: 'root',
  factory: () => MAINTENANCE_TEXTS_EN,
});
