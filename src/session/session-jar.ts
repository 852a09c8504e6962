/**
 * One profile's cookie jar: tough-cookie for RFC 6265 semantics, plus a cache
 * of ready Cookie headers so an unchanged jar is not re-matched on every
 * request (tough-cookie's lookup runs a public-suffix check and a path scan).
 */
import { Cookie, CookieJar } from 'tough-cookie'
import { ObservedCookieStore, type CookieChange, type CookieStoreLimits } from './cookie-store.js'

export interface RejectedCookie {
  setCookie: string
  url: string
  reason: string
}

interface CachedHeader {
  value: string
  /** The earliest expiry among the cookies in `value`: the entry is stale after it. */
  validUntil: number
}

const MAX_CACHED_HEADERS = 256
const MAX_APPLIED_LINES = 1024

export class SessionJar {
  readonly store: ObservedCookieStore
  readonly jar: CookieJar
  /** Bumped on every change; lets other caches know the jar moved on. */
  version = 0
  onChange: ((change: CookieChange) => void) | null = null
  onReject: ((rejected: RejectedCookie) => void) | null = null
  private readonly headerCache = new Map<string, CachedHeader>()
  /**
   * Set-Cookie lines already applied from a URL, with the jar version they
   * left behind. Servers repeat the same Set-Cookie on every response; while
   * the jar has not changed since, applying it again changes nothing
   * (tough-cookie keeps the first creation time, so even Max-Age does not
   * move; a deletion finds nothing left to delete), and skipping it saves a
   * parse, a URL parse and a public-suffix lookup per response.
   */
  private readonly applied = new Map<string, number>()

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
      this.headerCache.clear()
      this.onChange?.(change)
    }
  }

  get size (): number {
    return this.store.size
  }

  /**
   * The Cookie header this jar sends to `url`. `cacheKey` identifies the URL
   * without its query (cookies never depend on it), so callers can pass a
   * slice they already have instead of building one.
   */
  cookieHeader (url: string, cacheKey: string): string {
    const now = Date.now()
    const cached = this.headerCache.get(cacheKey)
    if (cached !== undefined && cached.validUntil > now) return cached.value
    if (this.store.size === 0) return ''
    const cookies = this.jar.getCookiesSync(url, { sort: true })
    let value = ''
    let validUntil = Infinity
    for (const c of cookies) {
      value = value === '' ? c.cookieString() : value + '; ' + c.cookieString()
      const expiry = c.expiryTime()
      if (expiry !== undefined && expiry < validUntil) validUntil = expiry
    }
    if (this.headerCache.size >= MAX_CACHED_HEADERS) this.headerCache.clear()
    this.headerCache.set(cacheKey, { value, validUntil })
    return value
  }

  /** Stores each Set-Cookie line received from `url`. Returns whether the jar changed. */
  capture (setCookies: readonly string[], url: string): boolean {
    const before = this.version
    for (const line of setCookies) {
      const key = line + '\u0000' + url
      if (this.applied.get(key) === this.version) continue
      try {
        this.jar.setCookieSync(line, url, { ignoreError: false })
      } catch (err) {
        this.onReject?.({ setCookie: line, url, reason: (err as Error).message })
        continue
      }
      if (this.applied.size >= MAX_APPLIED_LINES) this.applied.clear()
      this.applied.set(key, this.version)
    }
    return this.version !== before
  }

  cookies (): Cookie[] {
    return this.store.allCookies().sort((a, b) => (a.domain ?? '').localeCompare(b.domain ?? '') || (a.path ?? '').localeCompare(b.path ?? '') || a.key.localeCompare(b.key))
  }

  /** Puts back cookies read from disk without reporting them as changes. */
  restore (cookies: Iterable<Cookie>): void {
    const listener = this.store.onChange
    this.store.onChange = null
    try {
      for (const c of cookies) this.store.putCookie(c, () => {})
    } finally {
      this.store.onChange = listener
    }
    this.version++
    this.headerCache.clear()
  }

  clear (): void {
    this.store.removeAllCookies(() => {})
  }
}
