/**
 * A MemoryCookieStore that reports every real change. tough-cookie funnels all
 * writes through putCookie/removeCookie*, so this is the one place where the
 * jar learns that it must invalidate its Cookie-header cache and journal the
 * change to disk. A Set-Cookie that repeats what the jar already holds is not
 * a change, so it costs no write.
 *
 * It is also where the jar's rules hold: a cookie that cannot be sent is
 * refused (sendable.ts), whoever offers it, and the caps are kept in O(1)
 * per cookie by keeping every cookie in least-recently-used order.
 */
import { Cookie, MemoryCookieStore, type ErrorCallback } from 'tough-cookie'
import { admitCookie, UnsendableCookieError } from './sendable.js'

export type CookieChange =
  | { type: 'set', cookie: Cookie, previous: Cookie | undefined }
  | { type: 'delete', cookie: Cookie, reason: 'expired' | 'evicted' | 'removed' }
  | { type: 'clear' }

/** Cookies held by a set of stores (the loaded profiles), kept by the stores themselves. */
export interface CookieTally {
  cookies: number
}

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

function accessTime (c: Cookie): number {
  return c.lastAccessed instanceof Date ? c.lastAccessed.getTime() : 0
}

/** A place in a use list; a cookie has one in its profile's list and one in its domain's. */
interface UseNode {
  slot: Slot
  prev: UseNode | null
  next: UseNode | null
}

/** A held cookie; `stamp` is its lastAccessed when it was last queued. */
interface Slot {
  cookie: Cookie
  stamp: number
  inProfile: UseNode
  inDomain: UseNode
  domain: DomainEntry
}

/** Cookies least recently used first: a doubly linked list, so a use or a removal is O(1). */
class UseList {
  head: UseNode | null = null
  tail: UseNode | null = null
  size = 0

  append (node: UseNode): void {
    node.prev = this.tail
    node.next = null
    if (this.tail === null) this.head = node
    else this.tail.next = node
    this.tail = node
    this.size++
  }

  remove (node: UseNode): void {
    if (node.prev === null) this.head = node.next
    else node.prev.next = node.next
    if (node.next === null) this.tail = node.prev
    else node.next.prev = node.prev
    node.prev = null
    node.next = null
    this.size--
  }

  moveToTail (node: UseNode): void {
    if (this.tail === node) return
    this.remove(node)
    this.append(node)
  }
}

interface DomainEntry {
  name: string
  /** The domain's cookies, least recently used first. */
  lru: UseList
  /** Cookies per path, to drop empty path entries without counting keys. */
  paths: Map<string, number>
}

export class ObservedCookieStore extends MemoryCookieStore {
  /** Called synchronously after each change; null while restoring from disk. */
  onChange: ((change: CookieChange) => void) | null = null
  size = 0
  /** Counts this store's cookies while it is attached (see SessionJar.countIn). */
  tally: CookieTally | null = null
  private readonly limits: CookieStoreLimits
  /** Every cookie, least recently used first. */
  private order = new UseList()
  private slots = new Map<Cookie, Slot>()
  private domains = new Map<string, DomainEntry>()

  constructor (limits: CookieStoreLimits) {
    super()
    this.limits = limits
  }

  override putCookie (cookie: Cookie): Promise<void>
  override putCookie (cookie: Cookie, callback: ErrorCallback): void
  override putCookie (cookie: Cookie, callback?: ErrorCallback): Promise<void> | void {
    // The one door into the jar: tough-cookie reports a refusal here as the
    // Set-Cookie's rejection (setCookieSync throws it).
    const problem = admitCookie(cookie)
    if (problem !== null) {
      const err = new UnsendableCookieError(problem)
      return callback ? callback(err) : Promise.reject(err)
    }
    const domain = cookie.domain!
    const path = cookie.path!
    const { key } = cookie
    const previous = this.idx[domain]?.[path]?.[key]
    // A cookie set with a past expiry is a deletion (RFC 6265 5.3 step 11):
    // drop it now instead of keeping a dead entry until the next lookup.
    if (isExpired(cookie, Date.now())) {
      if (previous !== undefined) this.deleteEntry(previous, 'expired')
      return callback ? callback(null) : Promise.resolve()
    }
    const result = callback ? super.putCookie(cookie, callback) : super.putCookie(cookie)
    if (previous === undefined) {
      this.size++
      if (this.tally !== null) this.tally.cookies++
      let entry = this.domains.get(domain)
      if (entry === undefined) {
        entry = { name: domain, lru: new UseList(), paths: new Map() }
        this.domains.set(domain, entry)
      }
      const slot = { cookie, stamp: accessTime(cookie), domain: entry } as Slot
      slot.inProfile = { slot, prev: null, next: null }
      slot.inDomain = { slot, prev: null, next: null }
      this.slots.set(cookie, slot)
      this.order.append(slot.inProfile)
      entry.lru.append(slot.inDomain)
      entry.paths.set(path, (entry.paths.get(path) ?? 0) + 1)
      this.enforceLimits(cookie, entry)
      this.onChange?.({ type: 'set', cookie, previous })
    } else {
      const slot = this.slots.get(previous)
      if (slot !== undefined && previous !== cookie) {
        this.slots.delete(previous)
        slot.cookie = cookie
        this.slots.set(cookie, slot)
      }
      if (slot !== undefined) this.requeue(slot, accessTime(cookie))
      if (!sameCookie(previous, cookie)) this.onChange?.({ type: 'set', cookie, previous })
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
    this.order = new UseList()
    this.slots = new Map()
    this.domains = new Map()
    if (this.tally !== null) this.tally.cookies -= this.size
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

  /**
   * Marks cookies as just used (tough-cookie has set their lastAccessed while
   * reading them), so they are evicted last. Reads that do not report here
   * are noticed at eviction time instead (see `oldest`).
   */
  touched (cookies: Iterable<Cookie>): void {
    for (const c of cookies) {
      const slot = this.slots.get(c)
      if (slot !== undefined) this.requeue(slot, accessTime(c))
    }
  }

  /** The cookies in eviction order (least recently used first); for tests and diagnostics. */
  evictionOrder (): Cookie[] {
    const out: Cookie[] = []
    for (let n = this.order.head; n !== null; n = n.next) out.push(n.slot.cookie)
    return out
  }

  private requeue (slot: Slot, stamp: number): void {
    slot.stamp = stamp
    this.order.moveToTail(slot.inProfile)
    slot.domain.lru.moveToTail(slot.inDomain)
  }

  private deleteEntry (cookie: Cookie, reason: 'expired' | 'evicted' | 'removed'): void {
    const { domain, path, key } = cookie
    if (domain == null || path == null) return
    const byPath = this.idx[domain]
    const byKey = byPath?.[path]
    const held = byKey?.[key]
    if (held === undefined) return
    delete byKey![key]
    const slot = this.slots.get(held)
    if (slot !== undefined) {
      this.slots.delete(held)
      this.order.remove(slot.inProfile)
      const entry = slot.domain
      entry.lru.remove(slot.inDomain)
      const left = (entry.paths.get(path) ?? 1) - 1
      if (left > 0) {
        entry.paths.set(path, left)
      } else {
        entry.paths.delete(path)
        delete byPath![path]
      }
      if (entry.lru.size === 0) {
        this.domains.delete(domain)
        delete this.idx[domain]
      }
    }
    this.size--
    if (this.tally !== null) this.tally.cookies--
    this.onChange?.({ type: 'delete', cookie, reason })
  }

  /**
   * Browsers cap jars; without a cap a misbehaving server grows memory
   * without bound. Each eviction takes the head of a use list: O(1)
   * amortised per cookie, however large the jar or an import is.
   */
  private enforceLimits (added: Cookie, entry: DomainEntry): void {
    while (entry.lru.size > this.limits.maxCookiesPerDomain) {
      const victim = this.oldest(entry.lru, added)
      if (victim === undefined) break
      this.deleteEntry(victim, 'evicted')
    }
    while (this.size > this.limits.maxCookiesPerProfile) {
      const victim = this.oldest(this.order, added)
      if (victim === undefined) break
      this.deleteEntry(victim, 'evicted')
    }
  }

  /**
   * The least recently used cookie of `list` other than `keep`. A cookie read
   * since it was queued without `touched` (tough-cookie updates lastAccessed
   * on every lookup) goes to the back instead: each read costs at most one
   * such move, so this stays amortised O(1).
   */
  private oldest (list: UseList, keep: Cookie): Cookie | undefined {
    // A moved cookie's stamp then equals its lastAccessed: it is moved at most once per call.
    for (let node = list.head; node !== null;) {
      const next = node.next
      const slot = node.slot
      if (slot.cookie !== keep) {
        const used = accessTime(slot.cookie)
        if (used <= slot.stamp) return slot.cookie
        this.requeue(slot, used)
        // It was the tail already, so nothing after it was used less recently.
        if (next === null) return slot.cookie
      }
      node = next
    }
    return undefined
  }
}
