/**
 * Classifies tough-cookie's rejection messages. tough-cookie reports why it
 * refused a Set-Cookie only as message text, so the patterns below follow its
 * wording (checked against tough-cookie 6; test/observe covers each one) and
 * anything unknown stays 'other' with the original message kept alongside.
 * The jar's own refusals (sendable.ts) have fixed message prefixes.
 */
import type { RejectReason } from './event-types.js'

const PATTERNS: ReadonlyArray<[RegExp, RejectReason]> = [
  // The jar's own refusals (src/session/sendable.ts sendableCookieProblem).
  [/^Cookie name (cannot be sent|is not a string)/, 'unsendable-name'],
  [/^Cookie value (cannot be sent|is not a string)/, 'unsendable-value'],
  [/^Cookie (attribute|expiry) /, 'unstorable-attribute'],
  [/failed to parse/i, 'parse-error'],
  [/public suffix|special use domain/i, 'public-suffix'],
  [/not in this host's domain/i, 'domain-mismatch'],
  [/is Secure but this is not a secure connection/i, 'secure-over-http'],
  [/__Secure prefix/i, 'secure-prefix'],
  [/__Host prefix/i, 'host-prefix'],
  [/HttpOnly/i, 'http-only'],
  [/SameSite/i, 'same-site']
]

export function classifyRejection (message: string): RejectReason {
  for (const [re, reason] of PATTERNS) if (re.test(message)) return reason
  return 'other'
}

/** The cookie name of a Set-Cookie line, or null when there is none to show. */
export function rejectedCookieName (setCookie: string): string | null {
  const first = setCookie.split(';', 1)[0] ?? ''
  const eq = first.indexOf('=')
  const name = (eq === -1 ? '' : first.slice(0, eq)).trim()
  return name === '' ? null : name.slice(0, 256)
}
