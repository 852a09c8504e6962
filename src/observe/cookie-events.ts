/**
 * Turns jar changes (ProfileRegistry.hooks) into session events: cookie
 * set/changed/deleted/expired/evicted/rejected, and session.rotated when a
 * session cookie's value changes, flagged as fixation protection when it
 * happens during a login run or shortly after one succeeded.
 */
import crypto from 'node:crypto'
import type { Cookie } from 'tough-cookie'
import type { CookieChange } from '../session/cookie-store.js'
import type { Profile, ProfileRegistry } from '../session/profiles.js'
import type { RejectedCookie } from '../session/session-jar.js'
import { expiryIso } from '../session/sendable.js'
import type { CookieRef, SessionEvent } from './event-types.js'
import type { SessionEvents } from './events.js'
import { classifyRejection, rejectedCookieName } from './reject-reason.js'

// One-shot crypto.hash (Node 20.12+) is several times cheaper than createHash for short values.
const sha256Hex: (value: string) => string = typeof (crypto as { hash?: unknown }).hash === 'function'
  ? (value) => (crypto as unknown as { hash: (alg: string, data: string, enc: string) => string }).hash('sha256', value, 'hex')
  : (value) => crypto.createHash('sha256').update(value).digest('hex')

/**
 * The two values hashed last, with their hashes: a cookie that changes on
 * every response hashes its new value, and the next change's previous value
 * is that same string, found here instead of hashed again.
 */
let recentValue0: string | null = null
let recentHash0 = ''
let recentValue1: string | null = null
let recentHash1 = ''

export function valueHash (value: string): string {
  if (value === recentValue0) return recentHash0
  if (value === recentValue1) return recentHash1
  const hash = sha256Hex(value).slice(0, 12)
  recentValue1 = recentValue0
  recentHash1 = recentHash0
  recentValue0 = value
  recentHash0 = hash
  return hash
}

/** A session cookie going from empty to a value is a first session, not a rotation. */
const EMPTY_HASH = valueHash('')

export function cookieRef (c: Cookie): CookieRef {
  return buildRef(c)
}

function buildRef (c: Cookie): CookieRef {
  const expiry = c.expiryTime()
  return {
    name: c.key,
    domain: c.domain ?? '',
    path: c.path ?? '/',
    valueHash: valueHash(c.value),
    // Never throws: an event about a cookie must not fail the exchange that set it.
    expires: expiryIso(expiry),
    secure: c.secure,
    httpOnly: c.httpOnly,
    hostOnly: c.hostOnly === true,
    sameSite: c.sameSite ?? null
  }
}

function changedAttributes (a: CookieRef, b: CookieRef): string[] {
  const out: string[] = []
  for (const k of ['valueHash', 'expires', 'secure', 'httpOnly', 'hostOnly', 'sameSite'] as const) {
    if (a[k] !== b[k]) out.push(k === 'valueHash' ? 'value' : k)
  }
  return out
}

interface LoginState {
  /** seq of the login.started of a run still going, or null. */
  running: number | null
  /** seq and time of the last login.succeeded. */
  succeeded: { seq: number, at: number } | null
  /** The last session cookie a server deleted, to see delete-then-set as one rotation. */
  deleted: { key: string, hash: string, requestId: number | null, at: number } | null
}

/** A session-cookie deletion pairs with a set in the same response; older markers are stale. */
const DELETED_MARKER_MS = 10_000
/** Below this many tracked profiles no sweep runs. */
const MIN_SWEEP_AT = 256

export class CookieEventWiring {
  private readonly events: SessionEvents
  private readonly sessionNames: Set<string>
  /**
   * Login state by profile name. An entry lives only while it matters (a
   * login running, a success within fixationWindowMs, a fresh deletion
   * marker): finished ones are dropped at once, and a sweep, run when the map
   * doubles, drops the ones that went stale, so profiles that come and go
   * (unloaded, or one per client) do not accumulate.
   */
  private readonly state = new Map<string, LoginState>()
  private sweepAt = MIN_SWEEP_AT

  constructor (events: SessionEvents) {
    this.events = events
    this.sessionNames = new Set(events.config.sessionCookies.map((n) => n.toLowerCase()))
    events.subscribe(null, (e) => this.onEvent(e))
  }

  /** Chains onto hooks already set, so other observers keep theirs. */
  install (profiles: ProfileRegistry): void {
    const prevChange = profiles.hooks.onCookieChange
    const prevReject = profiles.hooks.onCookieRejected
    profiles.hooks.onCookieChange = (profile, change, requestId) => {
      prevChange?.(profile, change, requestId)
      this.onChange(profile, change, requestId)
    }
    profiles.hooks.onCookieRejected = (profile, rejected, requestId) => {
      prevReject?.(profile, rejected, requestId)
      this.onRejected(profile, rejected, requestId)
    }
  }

  onChange (profile: Profile, change: CookieChange, requestId: number | null): void {
    const name = profile.name
    // The URL whose response changed the jar (undefined for admin changes and expiry).
    const url = requestId !== null ? profile.activeUrl ?? undefined : undefined
    if (change.type === 'clear') {
      this.events.record(name, { type: 'jar.cleared', requestId, url })
      return
    }
    const cookie = cookieRef(change.cookie)
    if (change.type === 'set') {
      if (change.previous === undefined) {
        this.events.record(name, { type: 'cookie.set', requestId, url, cookie })
        // A lookup, not loginState(): a profile that only sets cookies holds no state.
        const d = this.state.get(name)?.deleted ?? null
        if (d !== null && d.requestId === requestId && d.key === keyOf(cookie) && d.hash !== cookie.valueHash) this.rotated(name, cookie, d.hash, requestId, url)
      } else {
        const previous = cookieRef(change.previous)
        this.events.record(name, { type: 'cookie.changed', requestId, url, cookie, previous, changed: changedAttributes(previous, cookie) })
        if (previous.valueHash !== cookie.valueHash && previous.valueHash !== EMPTY_HASH) this.rotated(name, cookie, previous.valueHash, requestId, url)
      }
      return
    }
    switch (change.reason) {
      case 'evicted':
        this.events.record(name, { type: 'cookie.evicted', requestId, url, cookie })
        break
      case 'removed':
        this.events.record(name, { type: 'cookie.deleted', requestId, url, cookie, by: 'admin' })
        break
      case 'expired':
        // The store reports a Set-Cookie with a past expiry as 'expired' too;
        // during a response's capture it is the server deleting the cookie.
        if (requestId !== null) {
          this.events.record(name, { type: 'cookie.deleted', requestId, url, cookie, by: 'server' })
          if (this.isSessionCookie(cookie.name)) this.loginState(name).deleted = { key: keyOf(cookie), hash: cookie.valueHash, requestId, at: Date.now() }
        } else {
          this.events.record(name, { type: 'cookie.expired', requestId, url, cookie })
        }
        break
    }
  }

  onRejected (profile: Profile, rejected: RejectedCookie, requestId: number | null): void {
    this.events.record(profile.name, {
      type: 'cookie.rejected',
      requestId,
      name: rejectedCookieName(rejected.setCookie),
      url: rejected.url,
      reason: classifyRejection(rejected.reason),
      message: rejected.reason
    })
  }

  private isSessionCookie (name: string): boolean {
    return this.sessionNames.has(name.toLowerCase())
  }

  private rotated (profile: string, cookie: CookieRef, from: string, requestId: number | null, url: string | undefined): void {
    if (!this.isSessionCookie(cookie.name)) return
    const s = this.loginState(profile)
    let loginSeq: number | null = null
    if (s.running !== null) loginSeq = s.running
    else if (s.succeeded !== null && Date.now() - s.succeeded.at <= this.events.config.fixationWindowMs) loginSeq = s.succeeded.seq
    s.deleted = null
    this.forgetIfIdle(profile, s, Date.now())
    this.events.record(profile, {
      type: 'session.rotated',
      requestId,
      url,
      name: cookie.name,
      domain: cookie.domain,
      path: cookie.path,
      from,
      to: cookie.valueHash,
      fixation: loginSeq !== null,
      loginSeq
    })
  }

  private onEvent (e: SessionEvent): void {
    if (e.type === 'login.started') {
      this.loginState(e.profile).running = e.seq
    } else if (e.type === 'login.succeeded') {
      const s = this.loginState(e.profile)
      s.running = null
      s.succeeded = { seq: e.seq, at: Date.now() }
    } else if (e.type === 'login.failed') {
      const s = this.loginState(e.profile)
      s.running = null
      this.forgetIfIdle(e.profile, s, Date.now())
    }
  }

  /** How many profiles have login state held (bounded; for tests and metrics). */
  get trackedProfiles (): number {
    return this.state.size
  }

  private forgetIfIdle (profile: string, s: LoginState, now: number): boolean {
    if (s.deleted !== null && now - s.deleted.at > DELETED_MARKER_MS) s.deleted = null
    if (s.succeeded !== null && now - s.succeeded.at > this.events.config.fixationWindowMs) s.succeeded = null
    if (s.running !== null || s.succeeded !== null || s.deleted !== null) return false
    this.state.delete(profile)
    return true
  }

  /** Drops stale entries; amortised O(1) per new entry (runs when the map doubled since the last sweep). */
  private sweep (): void {
    const now = Date.now()
    for (const [name, s] of this.state) this.forgetIfIdle(name, s, now)
    this.sweepAt = Math.max(MIN_SWEEP_AT, this.state.size * 2)
  }

  private loginState (profile: string): LoginState {
    let s = this.state.get(profile)
    if (s === undefined) {
      if (this.state.size >= this.sweepAt) this.sweep()
      s = { running: null, succeeded: null, deleted: null }
      this.state.set(profile, s)
    }
    return s
  }
}

function keyOf (c: CookieRef): string {
  return `${c.domain};${c.path};${c.name}`
}
