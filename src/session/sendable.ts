/**
 * What the jar may hold: only cookies it can send, list and write to disk.
 * Every way into a jar (Set-Cookie capture, cookies.txt import, journal
 * loading) applies these rules, so a hostile value is refused once, where it
 * enters, instead of failing every later request (Node refuses to send a
 * header with such a value) or every later listing (an expiry a Date cannot
 * hold throws on toISOString).
 *
 * Rules (README "Cookies the jar holds"):
 * - Name: not empty; no control character (U+0000-U+001F, U+007F), no ';'
 *   and no '='; every character in U+0000-U+00FF (a header carries bytes);
 *   no leading or trailing space or tab. Names need not be RFC 9110 tokens:
 *   browsers and the http-state corpus send '@a', '(a', '"a' and 'foo bar'.
 * - Value: the same, except that it may be empty and may contain '='.
 * - Domain and path: no control character, every character in
 *   U+0000-U+00FF; the path starts with '/'; the domain is not empty and has
 *   no whitespace.
 * - Dates (expiry, creation, last access) are valid; an expiry beyond
 *   9999-12-31T23:59:59Z (a huge Max-Age, a huge cookies.txt epoch) is
 *   clamped to that instant: the cookie stays persistent, it is not refused.
 */
import type { Cookie } from 'tough-cookie'

/** 9999-12-31T23:59:59.000Z: the latest expiry a jar holds (RFC 6265's cookie-date has a 4-digit year). */
export const MAX_EXPIRY_MS = Date.UTC(9999, 11, 31, 23, 59, 59)

const CONTROL = /[\x00-\x1f\x7f]/
const BEYOND_LATIN1 = /[^\x00-\xff]/
const EDGE_SPACE = /^[ \t]|[ \t]$/
// The same rules as one regex each, for the common case (a cookie change on
// the request path): only a miss runs the checks that explain the problem.
const SAFE_NAME = /^[\x21-\x3a\x3c\x3e-\x7e\x80-\xff](?:[\x20-\x3a\x3c\x3e-\x7e\x80-\xff]*[\x21-\x3a\x3c\x3e-\x7e\x80-\xff])?$/
const SAFE_VALUE = /^(?:[\x21-\x3a\x3c-\x7e\x80-\xff](?:[\x20-\x3a\x3c-\x7e\x80-\xff]*[\x21-\x3a\x3c-\x7e\x80-\xff])?)?$/
const SAFE_DOMAIN = /^[\x21-\x7e\x80-\x9f\xa1-\xff]+$/
const SAFE_PATH = /^\/[\x20-\x7e\x80-\xff]*$/

function describe (c: string): string {
  const code = c.codePointAt(0) ?? 0
  const u = `U+${code.toString(16).toUpperCase().padStart(4, '0')}`
  return code < 0x20 || code === 0x7f ? u : `${JSON.stringify(c)} (${u})`
}

function textProblem (text: string): string | null {
  const ctl = CONTROL.exec(text)
  if (ctl !== null) return `contains the control character ${describe(ctl[0])}`
  const wide = BEYOND_LATIN1.exec(text)
  if (wide !== null) return `contains ${describe(String.fromCodePoint(text.codePointAt(wide.index) ?? 0))}, which is not a single byte (a header carries only U+0000-U+00FF)`
  return null
}

/** Why a cookie name cannot go into a Cookie header, or null when it can. */
export function cookieNameProblem (name: string): string | null {
  if (SAFE_NAME.test(name)) return null
  if (name === '') return 'is empty'
  const text = textProblem(name)
  if (text !== null) return text
  if (name.includes(';')) return 'contains ";"'
  if (name.includes('=')) return 'contains "="'
  if (EDGE_SPACE.test(name)) return 'starts or ends with whitespace'
  return null
}

/** Why a cookie value cannot go into a Cookie header, or null when it can. */
export function cookieValueProblem (value: string): string | null {
  if (SAFE_VALUE.test(value)) return null
  const text = textProblem(value)
  if (text !== null) return text
  if (value.includes(';')) return 'contains ";"'
  if (EDGE_SPACE.test(value)) return 'starts or ends with whitespace'
  return null
}

/** Fast check for the hot path (a rotating value): true when `value` may be stored. */
export function isSendableValue (value: string): boolean {
  return SAFE_VALUE.test(value)
}

function validDate (d: unknown): boolean {
  return d instanceof Date && !Number.isNaN(d.getTime())
}

function optionalDate (d: Date | 'Infinity' | null): boolean {
  return d === null || d === 'Infinity' || validDate(d)
}

/**
 * Why `cookie` cannot be held by a jar (the message names the part and the
 * problem), or null when it can. Pure: call `clampCookieExpiry` first so a
 * far expiry is clamped rather than reported.
 */
export function sendableCookieProblem (cookie: Cookie): string | null {
  if (typeof cookie.key !== 'string') return 'Cookie name is not a string'
  const name = cookieNameProblem(cookie.key)
  if (name !== null) return `Cookie name cannot be sent: it ${name}`
  if (typeof cookie.value !== 'string') return 'Cookie value is not a string'
  const value = cookieValueProblem(cookie.value)
  if (value !== null) return `Cookie value cannot be sent: it ${value}`
  const { domain, path } = cookie
  if (typeof domain !== 'string' || domain === '') return 'Cookie attribute domain is missing'
  const badDomain = SAFE_DOMAIN.test(domain) ? null : textProblem(domain) ?? (/\s/.test(domain) ? 'contains whitespace' : null)
  if (badDomain !== null) return `Cookie attribute domain cannot be stored: it ${badDomain}`
  if (typeof path !== 'string' || !path.startsWith('/')) return 'Cookie attribute path must start with "/"'
  const badPath = SAFE_PATH.test(path) ? null : textProblem(path)
  if (badPath !== null) return `Cookie attribute path cannot be stored: it ${badPath}`
  if (cookie.expires !== 'Infinity' && cookie.expires !== null && !validDate(cookie.expires)) return 'Cookie attribute expires is not a valid date'
  const maxAge = cookie.maxAge
  if (maxAge !== null && maxAge !== 'Infinity' && maxAge !== '-Infinity' && !(typeof maxAge === 'number' && !Number.isNaN(maxAge))) return 'Cookie attribute max-age is not a number'
  if (!optionalDate(cookie.creation)) return 'Cookie attribute creation is not a valid date'
  if (!optionalDate(cookie.lastAccessed)) return 'Cookie attribute lastAccessed is not a valid date'
  if (maxAge === null && !(cookie.expires instanceof Date)) return null
  const expiry = cookie.expiryTime()
  if (expiry !== undefined && Number.isNaN(expiry)) return 'Cookie expiry is not a valid time'
  if (expiry !== undefined && expiry > MAX_EXPIRY_MS && (cookie.maxAge !== null || cookie.expires instanceof Date)) return 'Cookie expiry is beyond 9999-12-31T23:59:59Z'
  return null
}

/**
 * Clamps an expiry beyond MAX_EXPIRY_MS (a Max-Age of 99999999999999, an
 * "Infinity" Max-Age, an Expires date or cookies.txt epoch far away) to
 * MAX_EXPIRY_MS, as an Expires date: tough-cookie counts Max-Age from the
 * last access, so a clamped Max-Age would slide past the limit again. A
 * session cookie (no Max-Age, no Expires) stays one. Returns whether it
 * changed the cookie. Invalid dates are left for sendableCookieProblem.
 */
export function clampCookieExpiry (cookie: Cookie): boolean {
  const hasMaxAge = cookie.maxAge !== null
  if (!hasMaxAge && !(cookie.expires instanceof Date)) return false
  const expiry = cookie.expiryTime()
  if (expiry === undefined || Number.isNaN(expiry) || expiry <= MAX_EXPIRY_MS) return false
  cookie.maxAge = null
  cookie.expires = new Date(MAX_EXPIRY_MS)
  return true
}

/** Clamps, then checks: what every way into a jar calls. Returns the problem, or null when `cookie` may be stored. */
export function admitCookie (cookie: Cookie): string | null {
  clampCookieExpiry(cookie)
  return sendableCookieProblem(cookie)
}

/** An ISO 8601 time for an expiry in ms, or null for none/invalid; never throws (out-of-range times are clamped). */
export function expiryIso (ms: number | undefined): string | null {
  if (ms === undefined || !Number.isFinite(ms)) return null
  return new Date(Math.max(-8.64e15, Math.min(ms, 8.64e15))).toISOString()
}

/** A refusal by the jar's store; its message starts with the part refused (classified in observe/reject-reason.ts). */
export class UnsendableCookieError extends Error {
  override name = 'UnsendableCookieError'
}
