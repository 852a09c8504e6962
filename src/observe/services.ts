/**
 * Puts the observability parts together for server.ts: the session event log
 * and its cookie hooks, traffic capture (an observer only while some profile
 * captures), metrics (an observer when metrics.enabled), and the explain
 * extension points.
 */
import type { Logger } from 'pino'
import type { Config } from '../config/schema.js'
import type { ProxyDeps } from '../contracts/proxy-deps.js'
import type { ProfileRegistry } from '../session/profiles.js'
import type { UpstreamPool } from '../proxy/upstream.js'
import { DEFAULT_CAPTURE, TrafficCapture } from './capture.js'
import type { CaptureSettings } from '../contracts/settings.js'
import { isPattern, matchProfileSettings } from '../session/profile-settings.js'
import { CookieEventWiring } from './cookie-events.js'
import type { SessionEvents } from './events.js'
import type { ExplainContributor } from './explain.js'
import { csrfContributor, loginContributor } from './explain-autopilot.js'
import { Metrics } from './metrics.js'

export interface Observability {
  events: SessionEvents
  capture: TrafficCapture
  /** null with metrics.enabled false. */
  metrics: Metrics | null
  /** Sections added to explain results (CSRF rules plug in here). */
  explainContributors: ExplainContributor[]
  version: string
  close: () => Promise<void>
}

export interface ObservabilityOptions {
  config: Config
  profiles: ProfileRegistry
  pool: UpstreamPool
  deps: ProxyDeps
  events: SessionEvents
  log: Logger
  version: string
}

export function createObservability (opts: ObservabilityOptions): Observability {
  const { config, events, deps } = opts
  new CookieEventWiring(events).install(opts.profiles)
  // A profile's capture comes from its block, found as for every other
  // setting: by name, else the first pattern ("vu-*") that matches.
  const configured = (name: string): CaptureSettings | undefined => {
    const block = matchProfileSettings(config.profiles, name)?.settings.capture
    return block == null ? undefined : { ...DEFAULT_CAPTURE, ...block }
  }
  const patternCaptures = Object.entries(config.profiles).some(([key, p]) => isPattern(key) && p.capture?.enabled === true)
  const capture = new TrafficCapture(deps.observers, configured, patternCaptures)
  for (const [name, p] of Object.entries(config.profiles)) {
    if (p.capture != null && !isPattern(name)) capture.configure(name, { ...DEFAULT_CAPTURE, ...p.capture })
  }
  let metrics: Metrics | null = null
  if (config.metrics.enabled) {
    metrics = new Metrics(config.metrics, opts.profiles, opts.pool, events, opts.version)
    deps.observers.push(metrics)
  }
  return {
    events,
    capture,
    metrics,
    explainContributors: [loginContributor, csrfContributor],
    version: opts.version,
    close: async () => { await events.close() }
  }
}
