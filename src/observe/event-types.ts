/**
 * The session event vocabulary. Type strings are a public interface (the
 * events API, SSE, persisted JSONL, the web page): add new ones, never rename.
 *
 * Cookie values never appear in events, only a short fingerprint, so an event
 * log can be shared or persisted without leaking a session; the jar itself
 * (GET /_session/profiles/{p}/cookies) has the values.
 */

/** A cookie as events describe it. */
export interface CookieRef {
  name: string
  domain: string
  path: string
  /** First 12 hex digits of SHA-256(value): tells values apart without revealing them. */
  valueHash: string
  expires: string | null
  secure: boolean
  httpOnly: boolean
  hostOnly: boolean
  sameSite: string | null
}

/**
 * Why the jar refused a Set-Cookie, classified from tough-cookie's error or
 * the jar's own rules (src/session/sendable.ts): 'unsendable-name' and
 * 'unsendable-value' for what a Cookie header cannot carry (control
 * characters, ';', characters beyond U+00FF, ...), 'unstorable-attribute'
 * for a domain, path or date the jar cannot hold.
 */
export type RejectReason =
  | 'parse-error'
  | 'unsendable-name'
  | 'unsendable-value'
  | 'unstorable-attribute'
  | 'public-suffix'
  | 'domain-mismatch'
  | 'secure-over-http'
  | 'secure-prefix'
  | 'host-prefix'
  | 'http-only'
  | 'same-site'
  | 'other'

/**
 * Everything `SessionEvents.record` accepts, by type. `requestId` is the
 * proxied exchange that caused the event (the `id` of forward.ts's
 * `Exchange`, also `_requestId` in the HAR export), or null when no request
 * did (admin call, expiry noticed on a lookup, timer).
 */
export type EventInput = EventBody & {
  /** The URL of the request that caused it (scheme://authority/path?query), when one did. */
  url?: string
}

type EventBody =
  | { type: 'cookie.set', requestId: number | null, cookie: CookieRef }
  | { type: 'cookie.changed', requestId: number | null, cookie: CookieRef, previous: CookieRef, changed: string[] }
  /** `by`: 'server' (a Set-Cookie with a past expiry), 'admin' (the admin API). */
  | { type: 'cookie.deleted', requestId: number | null, cookie: CookieRef, by: 'server' | 'admin' }
  | { type: 'cookie.expired', requestId: number | null, cookie: CookieRef }
  /** Dropped to keep the jar within jar.maxCookiesPerDomain / maxCookiesPerProfile (least recently used first). */
  | { type: 'cookie.evicted', requestId: number | null, cookie: CookieRef }
  | { type: 'cookie.rejected', requestId: number | null, name: string | null, url: string, reason: RejectReason, message: string }
  | { type: 'jar.cleared', requestId: number | null }
  /** A session cookie's value changed. `fixation`: it happened during or just after a login (session-fixation protection). */
  | { type: 'session.rotated', requestId: number | null, name: string, domain: string, path: string, from: string, to: string, fixation: boolean, loginSeq: number | null }
  /** The upstream said the session is gone. `signal`: what showed it (e.g. 'status', 'redirect', 'body', 'cookie-deleted'). */
  | { type: 'session.loggedOut', requestId: number | null, signal: string, detail?: string }
  /** `trigger`: why the login runs, e.g. 'first-request', 'logged-out', 'admin'. `relogin`: true when it replaces a lost session. */
  | { type: 'login.started', requestId: number | null, flow: string, trigger: string, relogin: boolean }
  | { type: 'login.succeeded', requestId: number | null, flow: string, steps: number, durationMs: number, relogin: boolean }
  | { type: 'login.failed', requestId: number | null, flow: string, steps: number, durationMs: number, relogin: boolean, error: string }
  /** `source`: where the token was read, e.g. 'cookie:XSRF-TOKEN', 'header:X-CSRF-Token', 'html:input[name=_csrf]'. */
  | { type: 'csrf.captured', requestId: number | null, name: string, source: string }
  | { type: 'csrf.refreshed', requestId: number | null, name: string, source: string }
  /** The client's request `originalRequestId` was sent again (as `requestId`) after `reason`, e.g. a re-login. */
  | { type: 'request.replayed', requestId: number | null, originalRequestId: number, reason: string }

export type EventType = EventInput['type']

/** A recorded event: the input plus its place in the profile's log. */
export type SessionEvent = EventInput & {
  /** Increases by one per event of the profile; never reused, also across restarts when persisted. */
  seq: number
  /** ISO 8601 time it was recorded. */
  time: string
  profile: string
}
