/**
 * One profile's cookie jar: tough-cookie for RFC 6265 semantics, plus a cache
 * of ready Cookie headers so an unchanged jar is not re-matched on every
 * request (tough-cookie's lookup runs a public-suffix check and a path scan).
 */
import { Cookie, CookieJar } from 'tough-cookie'
import { ObservedCookieStore, recordCookieString, recordExpiry, sameScope, sourceOf, type CookieChange, type CookieRecord, type RecordSource, type CookieStoreLimits, type CookieTally } from './cookie-store.js'
import { admitCookie, isSendableValue } from './sendable.js'

export interface RejectedCookie {
  setCookie: string
  url: string
  reason: string
}

interface CachedHeader {
  /** The records of the matching cookies, in header order (a replaced one is looked up by its id). */
  ids: CookieRecord[]
  /** The header; null after a value-only change, rebuilt from `ids`. */
  value: string | null
  /** The earliest expiry among the matching cookies: the entry is stale after it. */
  validUntil: number
}

/**
 * A change that keeps a cookie's identity, scope and lifetime and only swaps
 * its value (a rotating session id or token) cannot change which cookies
 * match a URL or their order (tough-cookie keeps the creation time), so the
 * cached matches stay valid and only the header string is rebuilt.
 */
function valueOnly (a: CookieRecord | null, b: CookieRecord | null): boolean {
  return a !== null && b !== null && sameScope(a, b)
}

const MAX_CACHED_HEADERS = 256
const CONTROL_CHARS = /[\x00-\x1F]/

/**
 * Splits a Set-Cookie line as tough-cookie's parser does (trim, first ';',
 * first '=', trimmed name and value), or null when the line needs the full
 * parser (no name, control characters, terminators, a value the jar would
 * refuse: the full path reports the refusal).
 */
function splitSetCookie (line: string): { name: string, value: string, attrs: string } | null {
  const str = line.trim()
  const semi = str.indexOf(';')
  const pair = semi === -1 ? str : str.slice(0, semi)
  const eq = pair.indexOf('=')
  if (eq <= 0 || /[\n\r\0]/.test(pair)) return null
  const name = pair.slice(0, eq).trim()
  const value = pair.slice(eq + 1).trim()
  if (CONTROL_CHARS.test(name) || !isSendableValue(value)) return null
  return { name, value, attrs: semi === -1 ? '' : str.slice(semi) }
}

function lastUse (c: Cookie): number {
  return c.lastAccessed instanceof Date ? c.lastAccessed.getTime() : 0
}

export class SessionJar {
  readonly store: ObservedCookieStore
  readonly jar: CookieJar
  /** Bumped on every change; lets other caches know the jar moved on. */
  version = 0
  onChange: ((change: CookieChange) => void) | null = null
  onReject: ((rejected: RejectedCookie) => void) | null = null
  private readonly headerCache = new Map<string, CachedHeader>()
  /**
   * Servers repeat the same Set-Cookie on every response: while the cookie
   * it stored is still there, an identical line changes nothing and costs no
   * parse. A line that differs only in its value (a rotating session id or
   * token) yields that same cookie with the new value: tough-cookie's update
   * keeps creation time and every attribute, and none of its checks
   * (domain, path, prefixes, Secure) looks at the value. So the stored
   * cookie is copied with the new value instead of running the full parse,
   * URL parse and public-suffix lookup again. The cookie is found through
   * the line's source (its attributes and URL, shared, see RecordSource):
   * the source knows the domain and path such lines store under, and the
   * stored record must be one that a line of this very source made. Once
   * anything else replaced or removed it (a line with other attributes, a
   * deletion, the admin API), that no longer holds and the full parser runs.
   * Nothing is kept per jar for this.
   */
  /**
   * The last line that took the template path, so the same line again (the
   * fixed-cookie case) is known before it is split and keyed: it is skipped
   * exactly when that path would change nothing (its template is still the
   * stored cookie, unexpired). Not for Max-Age cookies, whose expiry moves
   * with lastAccessed: those take the template path each time.
   */
  private repeatLine: string | null = null
  private repeatUrl = ''
  private repeatCookie: CookieRecord | null = null
  private repeatExpiry = 0
  /** The source of the last line that took the value-only path. */
  private lastSource: RecordSource | null = null

  constructor (limits: CookieStoreLimits) {
    this.store = new ObservedCookieStore(limits)
    this.jar = new CookieJar(this.store, {
      rejectPublicSuffixes: true,
      // "Secure only over https", localhost included: a proxy cannot tell a
      // local test server from a tunnel endpoint.
      allowSecureOnLocal: false,
      prefixSecurity: 'strict',
      allowSpecialUseDomain: true
    })
    this.store.onChange = (change) => {
      this.version++
      if (change.type === 'set' && valueOnly(this.store.changedPrevious, this.store.changedRecord)) {
        for (const entry of this.headerCache.values()) entry.value = null
      } else {
        this.headerCache.clear()
      }
      this.onChange?.(change)
    }
  }

  get size (): number {
    return this.store.size
  }

  /**
   * Counts this jar's cookies in `tally` from now on (its current ones
   * included), or stops counting them (null): the registry's total of
   * cookies in loaded profiles.
   */
  countIn (tally: CookieTally | null): void {
    const store = this.store
    if (store.tally === tally) return
    if (store.tally !== null) store.tally.cookies -= store.size
    store.tally = tally
    if (tally !== null) tally.cookies += store.size
  }

  /**
   * The Cookie header this jar sends to `url`. `cacheKey` identifies the URL
   * without its query (cookies never depend on it), so callers can pass a
   * slice they already have instead of building one.
   */
  cookieHeader (url: string, cacheKey: string): string {
    const now = Date.now()
    const cached = this.headerCache.get(cacheKey)
    if (cached !== undefined && cached.validUntil > now) {
      if (cached.value !== null) return cached.value
      const rebuilt = this.rebuild(cached.ids)
      if (rebuilt !== null) {
        cached.value = rebuilt
        return rebuilt
      }
    }
    if (this.store.size === 0) return ''
    // The cookies tough-cookie returns report their use to the store themselves.
    const cookies = this.jar.getCookiesSync(url, { sort: true })
    let validUntil = Infinity
    const ids: CookieRecord[] = []
    const parts: string[] = []
    for (const c of cookies) {
      parts.push(c.cookieString())
      const r = this.store.record(c.domain ?? '', c.path ?? '', c.key)
      if (r !== undefined) ids.push(r)
      const expiry = c.expiryTime()
      if (expiry !== undefined && expiry < validUntil) validUntil = expiry
    }
    // join makes one flat string; a chain of + would keep a rope per cached header.
    const value = parts.join('; ')
    if (this.headerCache.size >= MAX_CACHED_HEADERS) this.headerCache.clear()
    this.headerCache.set(cacheKey, { ids, value, validUntil })
    return value
  }

  /** The header from the cookies now stored under `ids`; null if one is gone. */
  private rebuild (ids: CookieRecord[]): string | null {
    if (ids.length === 1) {
      const only = this.current(ids, 0)
      return only === undefined ? null : recordCookieString(only)
    }
    const parts: string[] = []
    for (let i = 0; i < ids.length; i++) {
      const r = this.current(ids, i)
      if (r === undefined) return null
      parts.push(recordCookieString(r))
    }
    return parts.join('; ')
  }

  /** The record now held in place of ids[i] (a value change replaces it), updating ids. */
  private current (ids: CookieRecord[], i: number): CookieRecord | undefined {
    const r = ids[i]!
    if (r.live) return r
    const now = this.store.record(r.domain, r.path, r.key)
    if (now !== undefined) ids[i] = now
    return now
  }

  /** Stores each Set-Cookie line received from `url`. Returns whether the jar changed. */
  capture (setCookies: readonly string[], url: string): boolean {
    const before = this.version
    for (const line of setCookies) {
      if (line === this.repeatLine && url === this.repeatUrl && this.isRepeat()) continue
      const split = splitSetCookie(line)
      if (split !== null && this.updateValue(line, split, url)) {
        continue
      }
      let stored: Cookie | undefined
      try {
        stored = this.jar.setCookieSync(line, url, { ignoreError: false })
      } catch (err) {
        this.onReject?.({ setCookie: line, url, reason: (err as Error).message })
        continue
      }
      const record = split !== null && stored !== undefined ? this.store.record(stored.domain ?? '', stored.path ?? '', stored.key) : undefined
      if (split !== null && record !== undefined) {
        const source = sourceOf(split.attrs, url)
        source.domain = record.domain
        source.path = record.path
        record.source = source
      }
    }
    return this.version !== before
  }

  /** What updateValue would find for the remembered line: its record stored, unexpired, same value. */
  private isRepeat (): boolean {
    const t = this.repeatCookie
    return t !== null && t.live && this.repeatExpiry > Date.now()
  }

  private rememberRepeat (line: string, url: string, t: CookieRecord): void {
    if (t.maxAge != null) {
      this.repeatLine = null
      this.repeatCookie = null
      return
    }
    this.repeatLine = line
    this.repeatUrl = url
    this.repeatCookie = t
    this.repeatExpiry = recordExpiry(t) ?? Infinity
  }

  /** The value-only fast path (see the comment above repeatLine); false when the full parser must run. */
  private updateValue (line: string, split: { name: string, value: string, attrs: string }, url: string): boolean {
    // A jar sees the same few lines again and again: its last source first.
    let source = this.lastSource
    if (source === null || source.attrs !== split.attrs || source.url !== url) {
      source = sourceOf(split.attrs, url)
      this.lastSource = source
    }
    if (source.domain === null || source.path === null) return false
    const held = this.store.record(source.domain, source.path, split.name)
    // Made by another line (or none): the full parser decides.
    if (held === undefined || held.source !== source) return false
    const now = Date.now()
    const expiry = recordExpiry(held)
    if (expiry !== undefined && expiry <= now) return false
    const record = held.value === split.value ? held : this.store.putValue(held, split.value, now)
    this.rememberRepeat(line, url, record)
    return true
  }

  cookies (): Cookie[] {
    return this.store.allCookies().sort((a, b) => (a.domain ?? '').localeCompare(b.domain ?? '') || (a.path ?? '').localeCompare(b.path ?? '') || a.key.localeCompare(b.key))
  }

  /**
   * Puts back cookies read from disk without reporting them as changes, in
   * their last-use order so the caps evict what was least recently used.
   * Returns the cookies the jar refused (sendable.ts), with the reason:
   * a journal written by an older version may hold values it cannot send.
   */
  restore (cookies: Iterable<Cookie>): Array<{ cookie: Cookie, problem: string }> {
    const refused: Array<{ cookie: Cookie, problem: string }> = []
    const admitted: Cookie[] = []
    for (const c of cookies) {
      const problem = admitCookie(c)
      if (problem === null) admitted.push(c)
      else refused.push({ cookie: c, problem })
    }
    admitted.sort((a, b) => lastUse(a) - lastUse(b))
    const listener = this.store.onChange
    this.store.onChange = null
    try {
      for (const c of admitted) this.store.putCookie(c, () => {})
    } finally {
      this.store.onChange = listener
    }
    this.version++
    this.headerCache.clear()
    return refused
  }

  /**
   * Replaces the whole jar with `cookies` (an import), or changes nothing
   * and returns the problems when one of them cannot be held. Validated
   * whole first, so a bad cookie never leaves a half-replaced jar.
   */
  replaceAll (cookies: readonly Cookie[]): Array<{ index: number, problem: string }> {
    const problems: Array<{ index: number, problem: string }> = []
    for (const [index, c] of cookies.entries()) {
      const problem = admitCookie(c)
      if (problem !== null) problems.push({ index, problem })
    }
    if (problems.length > 0) return problems
    this.clear()
    for (const c of cookies) this.store.putCookie(c, () => {})
    return problems
  }

  clear (): void {
    this.store.removeAllCookies(() => {})
  }
}
