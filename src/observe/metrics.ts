/**
 * Prometheus metrics. Per-exchange counting is an ExchangeObserver (registered
 * only with metrics.enabled) doing a map lookup and a few increments; gauges
 * (pool, jars) are read when scraped, and login/replay counts come from the
 * session events, so nothing else on the request path changes.
 *
 * The profile label is capped: the first `maxProfileLabels` profiles get
 * their own series, later ones share `other`, so a client inventing profile
 * names cannot grow the exposition without bound.
 */
import { performance } from 'node:perf_hooks'
import type { Exchange, ExchangeObserver } from '../contracts/exchange.js'
import type { MetricsConfig } from '../contracts/settings.js'
import type { ProfileRegistry } from '../session/profiles.js'
import type { UpstreamPool } from '../proxy/upstream.js'
import type { SessionEvent } from './event-types.js'
import type { SessionEvents } from './events.js'
import { Histogram, PromWriter } from './prom-text.js'
import { uncaughtErrors } from '../process-guard.js'

const STATUS_CLASSES = ['none', '1xx', '2xx', '3xx', '4xx', '5xx'] as const
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]
const OTHER = 'other'

interface ProfileCounters {
  /** Indexed like STATUS_CLASSES; 'none' is an exchange that ended before any status (client went away). */
  byClass: number[]
}

/** Counters by (profile, value), with the profile cardinality cap applied. */
class ByProfile {
  readonly values = new Map<string, Map<string, number>>()
  constructor (private readonly cap: number) {}
  inc (profile: string, value: string): void {
    let m = this.values.get(profile)
    if (m === undefined) {
      const key = this.values.size < this.cap ? profile : OTHER
      m = this.values.get(key) ?? new Map<string, number>()
      this.values.set(key, m)
    }
    m.set(value, (m.get(value) ?? 0) + 1)
  }

  write (w: PromWriter, name: string, label: string): void {
    for (const [profile, m] of this.values) for (const [value, n] of m) w.sample(name, { profile, [label]: value }, n)
  }
}

export class Metrics implements ExchangeObserver {
  private readonly config: MetricsConfig
  private readonly profiles: ProfileRegistry
  private readonly pool: UpstreamPool
  private readonly version: string
  private readonly startedAt = Date.now()
  private readonly byProfile = new Map<string, ProfileCounters>()
  private readonly latency = new Histogram(LATENCY_BUCKETS)
  /** Error codes are a fixed set: no cap needed. */
  private readonly errors = new Map<string, number>()
  private readonly logins: ByProfile
  private readonly relogins: ByProfile
  private readonly events: ByProfile

  constructor (config: MetricsConfig, profiles: ProfileRegistry, pool: UpstreamPool, events: SessionEvents, version: string) {
    this.config = config
    this.profiles = profiles
    this.pool = pool
    this.version = version
    this.logins = new ByProfile(config.maxProfileLabels)
    this.relogins = new ByProfile(config.maxProfileLabels)
    this.events = new ByProfile(config.maxProfileLabels)
    events.subscribe(null, (e) => this.onEvent(e))
  }

  onResponseHead (x: Exchange): void {
    this.latency.observe((performance.now() - x.started) / 1000)
  }

  onDone (x: Exchange): void {
    const name = x.profile.name
    let c = this.byProfile.get(name)
    if (c === undefined) {
      const key = this.byProfile.size < this.config.maxProfileLabels ? name : OTHER
      c = this.byProfile.get(key)
      if (c === undefined) {
        c = { byClass: [0, 0, 0, 0, 0, 0] }
        this.byProfile.set(key, c)
      }
    }
    const cls = x.status >= 100 && x.status < 600 ? Math.floor(x.status / 100) : 0
    c.byClass[cls]!++
    const code = x.error !== null ? x.error.code : x.status === 0 ? 'SP_CLIENT_CLOSED' : null
    if (code !== null) this.errors.set(code, (this.errors.get(code) ?? 0) + 1)
  }

  private onEvent (e: SessionEvent): void {
    this.events.inc(e.profile, e.type)
    if (e.type === 'login.succeeded' || e.type === 'login.failed') {
      const outcome = e.type === 'login.succeeded' ? 'succeeded' : 'failed'
      this.logins.inc(e.profile, outcome)
      if (e.relogin) this.relogins.inc(e.profile, outcome)
    }
  }

  render (): string {
    const w = new PromWriter()
    w.family('session_proxy_info', 'gauge', 'Build information; the value is always 1.')
    w.sample('session_proxy_info', { version: this.version }, 1)
    w.family('session_proxy_start_time_seconds', 'gauge', 'Start time of the proxy since the Unix epoch, in seconds.')
    w.sample('session_proxy_start_time_seconds', {}, Math.floor(this.startedAt / 1000))

    w.family('session_proxy_requests_total', 'counter', 'Proxied requests by profile and response status class (none: the client went away before a status).')
    for (const [profile, c] of this.byProfile) {
      for (let i = 0; i < STATUS_CLASSES.length; i++) if (c.byClass[i]! > 0 || i === 2) w.sample('session_proxy_requests_total', { profile, status_class: STATUS_CLASSES[i]! }, c.byClass[i]!)
    }
    w.family('session_proxy_upstream_latency_seconds', 'histogram', 'Time from receiving a proxied request to forwarding the upstream response head.')
    this.latency.write(w, 'session_proxy_upstream_latency_seconds', {})
    w.family('session_proxy_uncaught_errors_total', 'counter', 'Errors that escaped every handler and were caught by the process guard (each one is a bug).')
    w.sample('session_proxy_uncaught_errors_total', {}, uncaughtErrors())
    w.family('session_proxy_errors_total', 'counter', 'Proxied requests that failed, by error code.')
    for (const [code, n] of this.errors) w.sample('session_proxy_errors_total', { code }, n)

    this.writePool(w)

    w.family('session_proxy_jar_cookies', 'gauge', 'Cookies in the jar of each loaded profile.')
    let shown = 0
    let other = 0
    for (const p of this.profiles.loaded()) {
      if (shown < this.config.maxProfileLabels) { w.sample('session_proxy_jar_cookies', { profile: p.name }, p.jar.size); shown++ } else other += p.jar.size
    }
    if (other > 0) w.sample('session_proxy_jar_cookies', { profile: OTHER }, other)
    w.family('session_proxy_profiles_loaded', 'gauge', 'Profiles whose jar is in memory.')
    w.sample('session_proxy_profiles_loaded', {}, shown + (other > 0 ? 1 : 0))

    w.family('session_proxy_persist_failures_total', 'counter', 'Cookie jar writes that failed (read-only or full disk, I/O errors), retries included.')
    w.sample('session_proxy_persist_failures_total', {}, this.profiles.persistFailuresTotal)
    w.family('session_proxy_persist_failing_profiles', 'gauge', 'Profiles whose latest cookie jar write failed (their changes are not on disk yet).')
    w.sample('session_proxy_persist_failing_profiles', {}, this.profiles.failingProfiles)
    w.family('session_proxy_store_unreachable', 'gauge', 'Whether the shared jar store (Redis) cannot be reached now: 1 while requests use the last known cookies and writes are queued.')
    w.sample('session_proxy_store_unreachable', {}, this.profiles.storeUnreachable ? 1 : 0)

    w.family('session_proxy_logins_total', 'counter', 'Login runs by profile and outcome (re-logins included).')
    this.logins.write(w, 'session_proxy_logins_total', 'outcome')
    w.family('session_proxy_relogins_total', 'counter', 'Login runs that replaced a lost session, by profile and outcome.')
    this.relogins.write(w, 'session_proxy_relogins_total', 'outcome')
    w.family('session_proxy_session_events_total', 'counter', 'Session events recorded, by profile and type.')
    this.events.write(w, 'session_proxy_session_events_total', 'type')
    return w.toString()
  }

  private writePool (w: PromWriter): void {
    let inUse = 0
    let idle = 0
    let pending = 0
    let running = 0
    let origins = 0
    // undici 7: Agent#stats maps each origin to its pool's PoolStats.
    const stats = this.pool.agent.stats as Record<string, { connected?: number, free?: number, pending?: number, running?: number }>
    for (const s of Object.values(stats)) {
      origins++
      const connected = s.connected ?? 0
      const free = s.free ?? 0
      idle += free
      inUse += Math.max(0, connected - free)
      pending += s.pending ?? 0
      running += s.running ?? 0
    }
    w.family('session_proxy_pool_connections', 'gauge', 'Upstream keep-alive pool connections, in use or idle.')
    w.sample('session_proxy_pool_connections', { state: 'in_use' }, inUse)
    w.sample('session_proxy_pool_connections', { state: 'idle' }, idle)
    w.family('session_proxy_pool_requests', 'gauge', 'Upstream requests queued for a connection (pending) or on the wire (running).')
    w.sample('session_proxy_pool_requests', { state: 'pending' }, pending)
    w.sample('session_proxy_pool_requests', { state: 'running' }, running)
    w.family('session_proxy_pool_origins', 'gauge', 'Upstream origins with a connection pool.')
    w.sample('session_proxy_pool_origins', {}, origins)
  }
}
