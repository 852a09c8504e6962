/**
 * Whether a cookie read back from a journal can be sent in a Cookie header.
 * The journal is a file: a hand edit, another tool or an older version can
 * put anything in it, and a value with a CR/LF would make every later request
 * of the profile to that host fail (Node refuses the header). So loading
 * checks each record and rejects the ones a client could never be sent.
 *
 * One function on purpose: when the jar's own validity check (the one the
 * capture and import paths use) lands, this is the place to point at it.
 */
import type { Cookie } from 'tough-cookie'

/** RFC 9110 token characters. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
/** Controls (C0, DEL) and anything beyond latin1: Node cannot put them in a header. */
const UNSENDABLE = /[\x00-\x1F\x7F]|[^\x00-\xFF]/
/** The latest expiry an HTTP date (and every client) can carry: end of year 9999. */
export const MAX_EXPIRY_MS = Date.UTC(9999, 11, 31, 23, 59, 59)

/** Null when `cookie` can be stored and sent; otherwise why not. */
export function unsendableCookieReason (cookie: Cookie): string | null {
  if (typeof cookie.key !== 'string' || (cookie.key !== '' && !TOKEN.test(cookie.key))) return 'cookie name is not a token'
  if (typeof cookie.value !== 'string') return 'cookie value is missing'
  if (UNSENDABLE.test(cookie.value) || cookie.value.includes(';')) return 'cookie value has characters a Cookie header cannot carry'
  if (cookie.key === '' && cookie.value.includes('=')) return 'nameless cookie value contains "="'
  for (const [label, v] of [['domain', cookie.domain], ['path', cookie.path]] as const) {
    if (typeof v !== 'string' || UNSENDABLE.test(v) || v.includes(';')) return `cookie ${label} is not valid`
  }
  const expires = cookie.expires
  if (expires instanceof Date && (Number.isNaN(expires.getTime()) || expires.getTime() > MAX_EXPIRY_MS)) return 'cookie expiry is not a valid date before year 10000'
  let expiry: number | undefined
  try {
    expiry = cookie.expiryTime()
  } catch {
    return 'cookie expiry cannot be computed'
  }
  // Infinity is tough-cookie's "no expiry" (a session cookie).
  if (expiry !== undefined && (Number.isNaN(expiry) || (Number.isFinite(expiry) && expiry > MAX_EXPIRY_MS))) return 'cookie expiry is beyond year 9999'
  return null
}
