/**
 * A MemoryCookieStore that reports every real change. tough-cookie funnels all
 * writes through putCookie/removeCookie*, so this is the one place where the
 * jar learns that it must invalidate its Cookie-header cache and journal the
 * change to disk. A Set-Cookie that repeats what the jar already holds is not
 * a change, so it costs no write.
 */
import { Cookie, MemoryCookieStore, type ErrorCallback } from 'tough-cookie'

export type CookieChange =
  | { type: 'set', cookie: Cookie, previous: Cookie | undefined }
  | { type: 'delete', cookie: Cookie, reason: 'expired' | 'evicted' | 'removed' }
  | { type: 'clear' }

export interface CookieStoreLimits {
  maxCookiesPerProfile: number
  maxCookiesPerDomain: number
}

/** The attributes that matter to a client; creation/lastAccessed do not. */
export function sameCookie (a: Cookie, b: Cookie): boolean {
  return a.value === b.value &&
    a.secure === b.secure &&
    a.httpOnly === b.httpOnly &&
    a.hostOnly === b.hostOnly &&
    a.sameSite === b.sameSite &&
    String(a.expires) === String(b.expires) &&
    a.maxAge === b.maxAge &&
    String(a.extensions) === String(b.extensions)
}

function isExpired (cookie: Cookie, now: number): boolean {
  const expiry = cookie.expiryTime()
  return expiry !== undefined && expiry <= now
}

export class ObservedCookieStore extends MemoryCookieStore {
  /** Called synchronously after each change; null while restoring from disk. */
  onChange: ((change: CookieChange) => void) | null = null
  size = 0
  private readonly limits: CookieStoreLimits

  constructor (limits: CookieStoreLimits) {
    super()
    this.limits = limits
  }

  override putCookie (cookie: Cookie): Promise<void>
  override putCookie (cookie: Cookie, callback: ErrorCallback): void
  override putCookie (cookie: Cookie, callback?: ErrorCallback): Promise<void> | void {
    const { domain, path, key } = cookie
    const previous = domain != null && path != null ? this.idx[domain]?.[path]?.[key] : undefined
    // A cookie set with a past expiry is a deletion (RFC 6265 5.3 step 11):
    // drop it now instead of keeping a dead entry until the next lookup.
    if (isExpired(cookie, Date.now())) {
      if (previous !== undefined) this.deleteEntry(previous, 'expired')
      return callback ? callback(null) : Promise.resolve()
    }
    const result = callback ? super.putCookie(cookie, callback) : super.putCookie(cookie)
    if (previous === undefined) {
      this.size++
      this.enforceLimits(cookie)
      this.onChange?.({ type: 'set', cookie, previous })
    } else if (!sameCookie(previous, cookie)) {
      this.onChange?.({ type: 'set', cookie, previous })
    }
    return result
  }

  override removeCookie (domain: string, path: string, key: string): Promise<void>
  override removeCookie (domain: string, path: string, key: string, callback: ErrorCallback): void
  override removeCookie (domain: string, path: string, key: string, callback?: ErrorCallback): Promise<void> | void {
    const existing = this.idx[domain]?.[path]?.[key]
    // tough-cookie calls this while reading when it meets an expired cookie.
    if (existing !== undefined) this.deleteEntry(existing, isExpired(existing, Date.now()) ? 'expired' : 'removed')
    return callback ? callback(null) : Promise.resolve()
  }

  override removeCookies (domain: string, path: string): Promise<void>
  override removeCookies (domain: string, path: string, callback: ErrorCallback): void
  override removeCookies (domain: string, path: string, callback?: ErrorCallback): Promise<void> | void {
    const domainEntry = this.idx[domain]
    if (domainEntry !== undefined) {
      for (const p of Object.keys(domainEntry)) {
        if (path && p !== path) continue
        for (const cookie of Object.values(domainEntry[p] ?? {})) this.deleteEntry(cookie, 'removed')
      }
    }
    return callback ? callback(null) : Promise.resolve()
  }

  override removeAllCookies (): Promise<void>
  override removeAllCookies (callback: ErrorCallback): void
  override removeAllCookies (callback?: ErrorCallback): Promise<void> | void {
    this.idx = Object.create(null)
    this.size = 0
    this.onChange?.({ type: 'clear' })
    return callback ? callback(null) : Promise.resolve()
  }

  /** Every cookie held, without tough-cookie's promise plumbing. */
  allCookies (): Cookie[] {
    const out: Cookie[] = []
    for (const domain in this.idx) {
      const byPath = this.idx[domain]
      for (const path in byPath) {
        const byKey = byPath[path]
        for (const key in byKey) {
          const c = byKey[key]
          if (c !== undefined) out.push(c)
        }
      }
    }
    return out
  }

  private deleteEntry (cookie: Cookie, reason: 'expired' | 'evicted' | 'removed'): void {
    const { domain, path, key } = cookie
    if (domain == null || path == null) return
    const byPath = this.idx[domain]
    const byKey = byPath?.[path]
    if (byKey?.[key] === undefined) return
    delete byKey[key]
    if (Object.keys(byKey).length === 0) delete byPath![path]
    if (byPath !== undefined && Object.keys(byPath).length === 0) delete this.idx[domain]
    this.size--
    this.onChange?.({ type: 'delete', cookie, reason })
  }

  /** Browsers cap jars; without a cap a misbehaving server grows memory without bound. */
  private enforceLimits (added: Cookie): void {
    const domain = added.domain
    if (domain != null) {
      const inDomain: Cookie[] = []
      for (const byKey of Object.values(this.idx[domain] ?? {})) inDomain.push(...Object.values(byKey))
      if (inDomain.length > this.limits.maxCookiesPerDomain) this.evictOldest(inDomain, inDomain.length - this.limits.maxCookiesPerDomain, added)
    }
    if (this.size > this.limits.maxCookiesPerProfile) {
      this.evictOldest(this.allCookies(), this.size - this.limits.maxCookiesPerProfile, added)
    }
  }

  private evictOldest (cookies: Cookie[], count: number, keep: Cookie): void {
    const byAge = cookies.filter((c) => c !== keep).sort((a, b) => accessTime(a) - accessTime(b))
    for (const cookie of byAge.slice(0, count)) this.deleteEntry(cookie, 'evicted')
  }
}

function accessTime (c: Cookie): number {
  return c.lastAccessed instanceof Date ? c.lastAccessed.getTime() : 0
}
