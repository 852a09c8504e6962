/**
 * The jar's cookie store: tough-cookie's Store interface (so CookieJar keeps
 * the RFC 6265 semantics: parsing, domain and path matching, prefixes,
 * ordering), over a compact representation made for many profiles.
 *
 * Held long-term per cookie: one record with interned domain, path and name
 * strings, times as numbers (no Date objects) and its places in the two use
 * lists. tough-cookie's Cookie objects exist only while someone looks at
 * them: the store builds one on demand (findCookie/findCookies/allCookies,
 * a change's `cookie`) and drops what it is given once it has copied it.
 * Measured here (node, 10,000 jars of 21 cookies): about 1,100 B of heap
 * per cookie with tough-cookie's MemoryCookieStore and Cookie objects,
 * about 190 B with this store.
 *
 * A built Cookie stays connected for the one field tough-cookie writes back
 * by mutation: setting its `lastAccessed` (CookieJar.getCookies does it for
 * every cookie it returns) updates the record and its place in the use
 * lists, as an update of the shared object did with MemoryCookieStore.
 *
 * Every real change is reported (onChange): the jar invalidates its
 * Cookie-header cache and the profile journals it. A Set-Cookie that repeats
 * what the jar already holds is not a change, so it costs no write.
 *
 * It is also where the jar's rules hold: a cookie that cannot be sent is
 * refused (sendable.ts), whoever offers it, and the caps are kept in O(1)
 * per cookie by keeping every cookie in least-recently-used order.
 */
import { Cookie, pathMatch, permuteDomain, Store, type Callback, type ErrorCallback, type Nullable, type SerializedCookie } from 'tough-cookie'
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

/**
 * Domains, paths and names repeat across cookies and profiles (10,000
 * profiles of one site hold one domain string). Bounded, so a stream of
 * distinct names cannot grow it without end: past the bound a string is
 * simply not shared.
 */
const INTERN_MAX = 65_536
const interned = new Map<string, string>()
function intern (s: string): string {
  const known = interned.get(s)
  if (known !== undefined) return known
  if (interned.size < INTERN_MAX) interned.set(s, s)
  return s
}

/**
 * A copy of a string that does not point into another one. Substrings of a
 * Set-Cookie line (V8 sliced strings) keep the whole line alive for as
 * long as the cookie lives.
 */
function own (s: string): string {
  return s.length < 13 ? s : Buffer.from(s, 'latin1').toString('latin1')
}

/** Date | 'Infinity' | null as a number (Infinity for 'Infinity', NaN for an invalid Date) or null. */
type TimeField = Date | 'Infinity' | null | undefined

function timeOf (d: TimeField): number | null {
  if (d === 'Infinity') return Infinity
  if (d instanceof Date) return d.getTime()
  return null
}

function timeValue (n: number | null): Date | 'Infinity' | null {
  if (n === null) return null
  if (n === Infinity) return 'Infinity'
  return new Date(n)
}

/** Flag bits of a record (hostOnly and pathIsDefault may be null in tough-cookie). */
const SECURE = 1
const HTTP_ONLY = 2
const HOST_ONLY = 4
const HOST_ONLY_NULL = 8
const PATH_DEFAULT = 16
const PATH_DEFAULT_NULL = 32
/** The flags a client sees (sameCookie compares these). */
const CLIENT_FLAGS = SECURE | HTTP_ONLY | HOST_ONLY | HOST_ONLY_NULL

function flagsOf (c: Cookie): number {
  return (c.secure ? SECURE : 0) | (c.httpOnly ? HTTP_ONLY : 0) |
    (c.hostOnly === null ? HOST_ONLY_NULL : c.hostOnly ? HOST_ONLY : 0) |
    (c.pathIsDefault === null ? PATH_DEFAULT_NULL : c.pathIsDefault ? PATH_DEFAULT : 0)
}

/**
 * One held cookie. Replaced, never changed, by a put (lastAccessed, the list
 * links and `live` apart). Built as one object literal, so V8 gives every
 * record the same exact-size shape.
 */
export interface CookieRecord {
  key: string
  value: string
  domain: string
  path: string
  /**
   * Times in ms since the epoch (Infinity for 'Infinity', NaN for an
   * invalid Date) or null. Fields that also hold null are tagged, so a
   * time is a shared heap number rather than a box per field (see WARM_UP).
   */
  expires: number | null
  maxAge: number | 'Infinity' | '-Infinity' | null
  flags: number
  sameSite: string | undefined
  extensions: string[] | null
  creation: number | null
  lastAccessed: number | null
  creationIndex: number
  /** False once deleted or replaced. */
  live: boolean
  /** The Set-Cookie attributes and URL that made it (interned), for the jar's value-only fast path; null if unknown. */
  source: RecordSource | null
  domainEntry: DomainEntry | null
  /** Neighbours in the profile's use list and in the domain's. */
  prevUse: CookieRecord | null
  nextUse: CookieRecord | null
  prevInDomain: CookieRecord | null
  nextInDomain: CookieRecord | null
}

/**
 * The attributes of a Set-Cookie line and the URL it came from. Where
 * such a line stores its cookie (domain, path) depends on these alone, not
 * on the name or value: `domain` and `path` are filled in by the first line
 * of this source the full parser stored. Shared by every cookie and jar.
 */
export interface RecordSource {
  attrs: string
  url: string
  domain: string | null
  path: string | null
}

const sources = new Map<string, RecordSource>()
/** Distinct (attributes, URL) pairs remembered; the table starts again when full. */
const SOURCES_MAX = 16_384
/** The shared source for (attrs, url). */
export function sourceOf (attrs: string, url: string): RecordSource {
  const id = attrs + '\u0000' + url
  const known = sources.get(id)
  if (known !== undefined) return known
  // Records keep the sources they hold; only the lookup forgets.
  if (sources.size >= SOURCES_MAX) sources.clear()
  const made: RecordSource = { attrs: own(attrs), url: own(url), domain: null, path: null }
  sources.set(own(id), made)
  return made
}

function makeRecord (key: string, value: string, domain: string, path: string, expires: number | null, maxAge: CookieRecord['maxAge'], flags: number,
  sameSite: string | undefined, extensions: string[] | null, creation: number | null, lastAccessed: number | null, creationIndex: number, source: RecordSource | null): CookieRecord {
  return {
    key,
    value,
    domain,
    path,
    expires,
    maxAge,
    flags,
    sameSite,
    extensions,
    creation,
    lastAccessed,
    creationIndex,
    live: true,
    source,
    domainEntry: null,
    prevUse: null,
    nextUse: null,
    prevInDomain: null,
    nextInDomain: null
  }
}

/**
 * The first record sets the fields' representation: with null in the time
 * fields they are tagged from the start, so creation and lastAccessed can
 * share one number and null costs nothing.
 */
export const WARM_UP = makeRecord('', '', '', '/', null, null, 0, undefined, null, null, null, 0, null)

function recordOf (c: Cookie): CookieRecord {
  const accessed = timeOf(c.lastAccessed)
  // tough-cookie sets both from one Date on a new cookie: one number for both.
  const creation = c.creation === c.lastAccessed ? accessed : timeOf(c.creation)
  return makeRecord(intern(c.key), own(c.value), intern(c.domain!), intern(c.path!), timeOf(c.expires), c.maxAge as CookieRecord['maxAge'], flagsOf(c),
    c.sameSite, c.extensions, creation, accessed, c.creationIndex, null)
}

/** Cookie.expiryTime() for the cookie `r` holds. */
export function recordExpiry (r: CookieRecord): number | undefined {
  if (r.maxAge != null) {
    if (r.maxAge === 'Infinity') return Infinity
    if (r.lastAccessed === Infinity) return Infinity
    const relativeTo = r.lastAccessed ?? Date.now()
    const age = typeof r.maxAge === 'number' && r.maxAge > 0 ? r.maxAge * 1000 : -Infinity
    return relativeTo + age
  }
  if (r.expires === Infinity) return Infinity
  return r.expires ?? undefined
}

/** What Cookie.cookieString() returns for `r`. */
export function recordCookieString (r: CookieRecord): string {
  return r.key === '' ? r.value : r.key + '=' + r.value
}

/** Whether `a` and `b` differ only in value, use and creation (secure, httpOnly, hostOnly, sameSite, expiry alike). */
export function sameScope (a: CookieRecord, b: CookieRecord): boolean {
  return (a.flags & CLIENT_FLAGS) === (b.flags & CLIENT_FLAGS) && a.sameSite === b.sameSite && recordExpiry(a) === recordExpiry(b)
}

/**
 * An ISO time as Cookie.toJSON writes it (it throws on an invalid Date, and
 * so does this). The last few are kept: a rotating cookie's creation time
 * never changes, and changes within one millisecond share lastAccessed.
 */
const isoTimes: number[] = [NaN, NaN, NaN, NaN]
const isoTexts: string[] = ['', '', '', '']
let isoNext = 0
function isoOf (n: number): string {
  if (n === Infinity) return 'Infinity'
  for (let i = 0; i < 4; i++) if (isoTimes[i] === n) return isoTexts[i]!
  const text = new Date(n).toISOString()
  isoTimes[isoNext] = n
  isoTexts[isoNext] = text
  isoNext = (isoNext + 1) & 3
  return text
}

/**
 * Cookie.toJSON() of the cookie `r` holds, without building the Cookie:
 * the same properties in the same order, defaults left out as it does.
 * The journal writes one per change.
 */
export function recordToJSON (r: CookieRecord): SerializedCookie {
  const o: SerializedCookie = {}
  if (r.key !== '') o.key = r.key
  if (r.value !== '') o.value = r.value
  if (r.expires !== Infinity) o.expires = r.expires === null ? null : isoOf(r.expires)
  if (r.maxAge !== null) o.maxAge = r.maxAge
  o.domain = r.domain
  o.path = r.path
  if ((r.flags & SECURE) !== 0) o.secure = true
  if ((r.flags & HTTP_ONLY) !== 0) o.httpOnly = true
  if (r.extensions !== null) o.extensions = r.extensions
  if ((r.flags & HOST_ONLY_NULL) === 0) o.hostOnly = (r.flags & HOST_ONLY) !== 0
  if ((r.flags & PATH_DEFAULT_NULL) === 0) o.pathIsDefault = (r.flags & PATH_DEFAULT) !== 0
  if (r.creation !== null) o.creation = isoOf(r.creation)
  if (r.lastAccessed !== null) o.lastAccessed = isoOf(r.lastAccessed)
  if (typeof r.sameSite === 'string') o.sameSite = r.sameSite
  return o
}

/** A copy of `r` with another value, used now: what tough-cookie's update makes of a value-only Set-Cookie. */
function withValue (r: CookieRecord, value: string, now: number): CookieRecord {
  return makeRecord(r.key, own(value), r.domain, r.path, r.expires, r.maxAge, r.flags, r.sameSite, r.extensions, r.creation, now, r.creationIndex, r.source)
}

/** Cookies least recently used first: a doubly linked list through the records, so a use or a removal is O(1). */
class UseList {
  head: CookieRecord | null = null
  tail: CookieRecord | null = null
  size = 0
}

function appendUse (list: UseList, r: CookieRecord): void {
  r.prevUse = list.tail
  r.nextUse = null
  if (list.tail === null) list.head = r
  else list.tail.nextUse = r
  list.tail = r
  list.size++
}

function removeUse (list: UseList, r: CookieRecord): void {
  if (r.prevUse === null) list.head = r.nextUse
  else r.prevUse.nextUse = r.nextUse
  if (r.nextUse === null) list.tail = r.prevUse
  else r.nextUse.prevUse = r.prevUse
  r.prevUse = null
  r.nextUse = null
  list.size--
}

function appendInDomain (list: UseList, r: CookieRecord): void {
  r.prevInDomain = list.tail
  r.nextInDomain = null
  if (list.tail === null) list.head = r
  else list.tail.nextInDomain = r
  list.tail = r
  list.size++
}

function removeInDomain (list: UseList, r: CookieRecord): void {
  if (r.prevInDomain === null) list.head = r.nextInDomain
  else r.prevInDomain.nextInDomain = r.nextInDomain
  if (r.nextInDomain === null) list.tail = r.prevInDomain
  else r.nextInDomain.prevInDomain = r.prevInDomain
  r.prevInDomain = null
  r.nextInDomain = null
  list.size--
}

class DomainEntry {
  /** The domain's cookies, least recently used first. */
  readonly lru = new UseList()
  /** path -> name -> record */
  readonly paths = new Map<string, Map<string, CookieRecord>>()
}

/** sameCookie for records. */
function sameRecord (a: CookieRecord, b: CookieRecord): boolean {
  return a.value === b.value &&
    (a.flags & CLIENT_FLAGS) === (b.flags & CLIENT_FLAGS) &&
    a.sameSite === b.sameSite &&
    (a.expires === b.expires || (Number.isNaN(a.expires) && Number.isNaN(b.expires))) &&
    a.maxAge === b.maxAge &&
    String(a.extensions) === String(b.extensions)
}

function isExpired (cookie: Cookie, now: number): boolean {
  const expiry = cookie.expiryTime()
  return expiry !== undefined && expiry <= now
}

function recordExpired (r: CookieRecord, now: number): boolean {
  const expiry = recordExpiry(r)
  return expiry !== undefined && expiry <= now
}

function settle (callback: ErrorCallback | undefined, err: Error | null = null): Promise<void> | undefined {
  if (callback !== undefined) {
    callback(err)
    return undefined
  }
  return err === null ? Promise.resolve() : Promise.reject(err)
}

function answer<T> (callback: Callback<T> | undefined, value: T): Promise<T> | undefined {
  if (callback !== undefined) {
    callback(null, value)
    return undefined
  }
  return Promise.resolve(value)
}

export class ObservedCookieStore extends Store {
  /** Called synchronously after each change; null while restoring from disk. */
  onChange: ((change: CookieChange) => void) | null = null
  size = 0
  /** Counts this store's cookies while it is attached (see SessionJar.countIn). */
  tally: CookieTally | null = null
  /** The records of the change being reported (for the jar's cache), valid during onChange. */
  changedRecord: CookieRecord | null = null
  changedPrevious: CookieRecord | null = null
  private readonly limits: CookieStoreLimits
  /** Every cookie, least recently used first. */
  private order = new UseList()
  private domains = new Map<string, DomainEntry>()

  constructor (limits: CookieStoreLimits) {
    super()
    this.synchronous = true
    this.limits = limits
  }

  /** The record held for (domain, path, key), if any. */
  record (domain: string, path: string, key: string): CookieRecord | undefined {
    return this.domains.get(domain)?.paths.get(path)?.get(key)
  }

  /** The cookie held for (domain, path, key), built now. */
  find (domain: string, path: string, key: string): Cookie | undefined {
    const r = this.record(domain, path, key)
    return r === undefined ? undefined : this.materialise(r)
  }

  /**
   * A tough-cookie Cookie for `r`. Setting its lastAccessed (as
   * CookieJar.getCookies does) reaches the record while it is held.
   */
  materialise (r: CookieRecord, connected = true): Cookie {
    const c = new Cookie({
      key: r.key,
      value: r.value,
      domain: r.domain,
      path: r.path,
      maxAge: r.maxAge,
      secure: (r.flags & SECURE) !== 0,
      httpOnly: (r.flags & HTTP_ONLY) !== 0,
      hostOnly: (r.flags & HOST_ONLY_NULL) !== 0 ? null : (r.flags & HOST_ONLY) !== 0,
      pathIsDefault: (r.flags & PATH_DEFAULT_NULL) !== 0 ? null : (r.flags & PATH_DEFAULT) !== 0,
      sameSite: r.sameSite,
      extensions: r.extensions
    })
    c.expires = timeValue(r.expires) as Date | 'Infinity'
    c.creation = timeValue(r.creation)
    c.creationIndex = r.creationIndex
    let accessed = timeValue(r.lastAccessed)
    if (!connected) {
      c.lastAccessed = accessed
      return c
    }
    Object.defineProperty(c, 'lastAccessed', {
      enumerable: true,
      configurable: true,
      get: () => accessed,
      set: (v: Date | 'Infinity' | null) => {
        accessed = v
        if (r.live) this.accessed(r, timeOf(v))
      }
    })
    return c
  }

  /**
   * A change's cookie: a snapshot (nothing reads a change's cookie back into
   * the jar, so it skips the lastAccessed connection, the dearest part of
   * building one), serialised straight from the record (the journal's line).
   */
  private reported (r: CookieRecord): Cookie {
    const c = this.materialise(r, false)
    Object.defineProperty(c, 'toJSON', { enumerable: false, configurable: true, writable: true, value: () => recordToJSON(r) })
    return c
  }

  override findCookie (domain: Nullable<string>, path: Nullable<string>, key: Nullable<string>): Promise<Cookie | undefined>
  override findCookie (domain: Nullable<string>, path: Nullable<string>, key: Nullable<string>, callback: Callback<Cookie | undefined>): void
  override findCookie (domain: Nullable<string>, path: Nullable<string>, key: Nullable<string>, callback?: Callback<Cookie | undefined>): Promise<Cookie | undefined> | undefined {
    const found = domain == null || path == null || key == null ? undefined : this.find(domain, path, key)
    return answer(callback, found)
  }

  override findCookies (domain: Nullable<string>, path: Nullable<string>, allowSpecialUseDomain?: boolean): Promise<Cookie[]>
  override findCookies (domain: Nullable<string>, path: Nullable<string>, allowSpecialUseDomain?: boolean, callback?: Callback<Cookie[]>): void
  override findCookies (domain: Nullable<string>, path: Nullable<string>, allowSpecialUseDomain: boolean | Callback<Cookie[]> = false, callback?: Callback<Cookie[]>): Promise<Cookie[]> | undefined {
    if (typeof allowSpecialUseDomain === 'function') {
      callback = allowSpecialUseDomain
      allowSpecialUseDomain = true
    }
    const results: Cookie[] = []
    if (domain == null || domain === '') return answer(callback, results)
    const candidates = permuteDomain(domain, allowSpecialUseDomain) ?? [domain]
    for (const d of candidates) {
      const entry = this.domains.get(d)
      if (entry === undefined) continue
      for (const [cookiePath, byKey] of entry.paths) {
        if (path != null && path !== '' && !pathMatch(path, cookiePath)) continue
        for (const r of byKey.values()) results.push(this.materialise(r))
      }
    }
    return answer(callback, results)
  }

  override putCookie (cookie: Cookie): Promise<void>
  override putCookie (cookie: Cookie, callback: ErrorCallback): void
  override putCookie (cookie: Cookie, callback?: ErrorCallback): Promise<void> | undefined {
    // The one door into the jar: tough-cookie reports a refusal here as the
    // Set-Cookie's rejection (setCookieSync throws it).
    const problem = admitCookie(cookie)
    if (problem !== null) return settle(callback, new UnsendableCookieError(problem))
    const previous = this.record(cookie.domain!, cookie.path!, cookie.key)
    // A cookie set with a past expiry is a deletion (RFC 6265 5.3 step 11):
    // drop it now instead of keeping a dead entry until the next lookup.
    if (isExpired(cookie, Date.now())) {
      if (previous !== undefined) this.deleteRecord(previous, 'expired')
      return settle(callback)
    }
    const r = recordOf(cookie)
    if (previous === undefined) this.add(r)
    else this.replace(previous, r, !sameRecord(previous, r))
    return settle(callback)
  }

  override updateCookie (oldCookie: Cookie, newCookie: Cookie): Promise<void>
  override updateCookie (oldCookie: Cookie, newCookie: Cookie, callback: ErrorCallback): void
  override updateCookie (_oldCookie: Cookie, newCookie: Cookie, callback?: ErrorCallback): Promise<void> | undefined {
    if (callback === undefined) return this.putCookie(newCookie)
    this.putCookie(newCookie, callback)
    return undefined
  }

  /**
   * tough-cookie's update of `r` by a Set-Cookie that differs only in its
   * value: the same cookie with the new value, used now. Returns the record
   * now held.
   */
  putValue (r: CookieRecord, value: string, now: number): CookieRecord {
    if (r.value === value) {
      this.accessed(r, now)
      return r
    }
    const next = withValue(r, value, now)
    this.replace(r, next, true)
    return next
  }

  override removeCookie (domain: Nullable<string>, path: Nullable<string>, key: Nullable<string>): Promise<void>
  override removeCookie (domain: Nullable<string>, path: Nullable<string>, key: Nullable<string>, callback: ErrorCallback): void
  override removeCookie (domain: Nullable<string>, path: Nullable<string>, key: Nullable<string>, callback?: ErrorCallback): Promise<void> | undefined {
    const existing = domain == null || path == null || key == null ? undefined : this.record(domain, path, key)
    // tough-cookie calls this while reading when it meets an expired cookie.
    if (existing !== undefined) this.deleteRecord(existing, recordExpired(existing, Date.now()) ? 'expired' : 'removed')
    return settle(callback)
  }

  override removeCookies (domain: string, path: Nullable<string>): Promise<void>
  override removeCookies (domain: string, path: Nullable<string>, callback: ErrorCallback): void
  override removeCookies (domain: string, path: Nullable<string>, callback?: ErrorCallback): Promise<void> | undefined {
    const entry = this.domains.get(domain)
    if (entry !== undefined) {
      for (const [p, byKey] of [...entry.paths]) {
        if (path != null && path !== '' && p !== path) continue
        for (const r of [...byKey.values()]) this.deleteRecord(r, 'removed')
      }
    }
    return settle(callback)
  }

  override removeAllCookies (): Promise<void>
  override removeAllCookies (callback: ErrorCallback): void
  override removeAllCookies (callback?: ErrorCallback): Promise<void> | undefined {
    for (let r = this.order.head; r !== null; r = r.nextUse) r.live = false
    this.order = new UseList()
    this.domains = new Map()
    if (this.tally !== null) this.tally.cookies -= this.size
    this.size = 0
    this.onChange?.({ type: 'clear' })
    return settle(callback)
  }

  override getAllCookies (): Promise<Cookie[]>
  override getAllCookies (callback: Callback<Cookie[]>): void
  override getAllCookies (callback?: Callback<Cookie[]>): Promise<Cookie[]> | undefined {
    // tough-cookie's serialize sorts these by creationIndex itself.
    return answer(callback, this.allCookies())
  }

  /** Every record held, least recently used first. */
  records (): CookieRecord[] {
    const out: CookieRecord[] = []
    for (let r = this.order.head; r !== null; r = r.nextUse) out.push(r)
    return out
  }

  /** Every cookie held, built now. */
  allCookies (): Cookie[] {
    const out: Cookie[] = []
    for (const entry of this.domains.values()) {
      for (const byKey of entry.paths.values()) {
        for (const r of byKey.values()) out.push(this.materialise(r))
      }
    }
    return out
  }

  /**
   * Marks cookies as just used. Built cookies report their own
   * lastAccessed writes, so this only matters for cookies built elsewhere;
   * kept for callers that read through tough-cookie.
   */
  touched (cookies: Iterable<Cookie>): void {
    for (const c of cookies) {
      if (c.domain == null || c.path == null) continue
      const r = this.record(c.domain, c.path, c.key)
      const at = timeOf(c.lastAccessed)
      if (r !== undefined && at !== null && at > (r.lastAccessed ?? -Infinity)) this.accessed(r, at)
    }
  }

  /** The cookies in eviction order (least recently used first); for tests and diagnostics. */
  evictionOrder (): Cookie[] {
    return this.records().map((r) => this.materialise(r))
  }

  /** `r` was used at `at`: it goes to the back of both use lists. */
  private accessed (r: CookieRecord, at: number | null): void {
    r.lastAccessed = at
    if (this.order.tail !== r) {
      removeUse(this.order, r)
      appendUse(this.order, r)
    }
    const lru = r.domainEntry!.lru
    if (lru.tail !== r) {
      removeInDomain(lru, r)
      appendInDomain(lru, r)
    }
  }

  private report (type: 'set', r: CookieRecord, previous: CookieRecord | null): void {
    const listener = this.onChange
    if (listener === null) return
    // Built only if a listener looks (the journal does; an event observer may).
    let cookie: Cookie | undefined
    let prev: Cookie | undefined
    const materialise = this.reported.bind(this)
    this.changedRecord = r
    this.changedPrevious = previous
    try {
      listener({
        type,
        get cookie () { return (cookie ??= materialise(r)) },
        get previous () { return previous === null ? undefined : (prev ??= materialise(previous)) }
      })
    } finally {
      this.changedRecord = null
      this.changedPrevious = null
    }
  }

  private add (r: CookieRecord): void {
    let entry = this.domains.get(r.domain)
    if (entry === undefined) {
      entry = new DomainEntry()
      this.domains.set(r.domain, entry)
    }
    let byKey = entry.paths.get(r.path)
    if (byKey === undefined) {
      byKey = new Map()
      entry.paths.set(r.path, byKey)
    }
    byKey.set(r.key, r)
    r.domainEntry = entry
    appendUse(this.order, r)
    appendInDomain(entry.lru, r)
    this.size++
    if (this.tally !== null) this.tally.cookies++
    this.enforceLimits(r, entry)
    this.report('set', r, null)
  }

  /** `next` takes the place of `previous` (same domain, path and key), used now. */
  private replace (previous: CookieRecord, next: CookieRecord, changed: boolean): void {
    const entry = previous.domainEntry!
    entry.paths.get(previous.path)!.set(previous.key, next)
    next.domainEntry = entry
    // Take over its places in both lists, then move to the back as used.
    next.prevUse = previous.prevUse
    next.nextUse = previous.nextUse
    if (next.prevUse === null) this.order.head = next
    else next.prevUse.nextUse = next
    if (next.nextUse === null) this.order.tail = next
    else next.nextUse.prevUse = next
    next.prevInDomain = previous.prevInDomain
    next.nextInDomain = previous.nextInDomain
    if (next.prevInDomain === null) entry.lru.head = next
    else next.prevInDomain.nextInDomain = next
    if (next.nextInDomain === null) entry.lru.tail = next
    else next.nextInDomain.prevInDomain = next
    previous.live = false
    previous.prevUse = previous.nextUse = previous.prevInDomain = previous.nextInDomain = null
    this.accessed(next, next.lastAccessed)
    if (changed) this.report('set', next, previous)
  }

  private deleteRecord (r: CookieRecord, reason: 'expired' | 'evicted' | 'removed'): void {
    if (!r.live) return
    const entry = r.domainEntry!
    const byKey = entry.paths.get(r.path)
    if (byKey?.get(r.key) !== r) return
    byKey.delete(r.key)
    if (byKey.size === 0) entry.paths.delete(r.path)
    removeUse(this.order, r)
    removeInDomain(entry.lru, r)
    if (entry.lru.size === 0) this.domains.delete(r.domain)
    r.live = false
    this.size--
    if (this.tally !== null) this.tally.cookies--
    const listener = this.onChange
    if (listener === null) return
    let cookie: Cookie | undefined
    const materialise = this.reported.bind(this)
    this.changedRecord = r
    try {
      listener({ type: 'delete', reason, get cookie () { return (cookie ??= materialise(r)) } })
    } finally {
      this.changedRecord = null
    }
  }

  /**
   * Browsers cap jars; without a cap a misbehaving server grows memory
   * without bound. Each eviction takes the head of a use list: O(1) per
   * cookie, however large the jar or an import is (every use moves a
   * record to the back as it happens).
   */
  private enforceLimits (added: CookieRecord, entry: DomainEntry): void {
    while (entry.lru.size > this.limits.maxCookiesPerDomain) {
      const victim = entry.lru.head === added ? added.nextInDomain : entry.lru.head
      if (victim === null) break
      this.deleteRecord(victim, 'evicted')
    }
    while (this.size > this.limits.maxCookiesPerProfile) {
      const victim = this.order.head === added ? added.nextUse : this.order.head
      if (victim === null) break
      this.deleteRecord(victim, 'evicted')
    }
  }
}
