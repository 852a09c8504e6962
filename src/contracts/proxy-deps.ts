/** What every proxy entry (forward, intercept, websocket, reverse, the autopilot) is given by the wiring. */
import type { Logger } from 'pino'
import type { SessionEvents } from '../observe/events.js'
import type { UpstreamPool } from '../proxy/upstream.js'
import type { ProfileRegistry } from '../session/profiles.js'
import type { ExchangeObserver, ViaIdentity } from './exchange.js'
import type { CompiledHooks } from './hooks.js'

/** Writes the access log's "proxied" line for one exchange (src/log.ts createProxiedLine). */
export type ProxiedLine = (req: number, method: string, host: string, url: string, status: number, ms: number, profile: string) => void

export interface ProxyDeps {
  pool: UpstreamPool
  profiles: ProfileRegistry
  log: Logger
  /** One line per exchange (createAccessLogger): no redaction pass, no header values. */
  accessLog: Logger
  /** The access log's "proxied" line (createProxiedLine), or null when the level leaves it out. */
  proxiedLine: ProxiedLine | null
  via: ViaIdentity
  /** proxyAuth users (name to password), or null when auth is off. */
  proxyUsers: ReadonlyMap<string, string> | null
  /** Empty on the fast path; each observer costs only when present. */
  observers: ExchangeObserver[]
  /** The per-profile session event log: login, CSRF, replay and logged-out code records here. */
  events: SessionEvents
  /** The addons' hooks, compiled once at start; `size === 0` (no addon) is all the hot path checks. */
  hooks: CompiledHooks
}
