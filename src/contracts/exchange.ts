/**
 * What one proxied exchange looks like to its observers (events, capture, metrics)
 * and the per-entry options, shared by every entry in src/proxy/ and by observe/.
 */
import type { SessionProxyError } from '../errors.js'
import type { Target } from '../proxy/target.js'
import type { Profile } from '../session/profiles.js'

export interface ViaIdentity {
  /** A token unique to this proxy process, used to detect loops. */
  pseudonym: string
  /** What this proxy appends to Via: `1.1 <pseudonym>`. */
  entry: string
}

/**
 * What one proxied exchange looks like to observers (events, capture,
 * metrics). Observers see it; only the forward path changes it.
 */
export interface Exchange {
  /** Unique per process, so events can point at the request that caused them. */
  readonly id: number
  readonly method: string
  readonly target: Target
  readonly profile: Profile
  readonly started: number
  readonly startedAt: number
  /** The headers sent upstream (flat name/value list). */
  requestHeaders: string[]
  status: number
  /** The headers sent to the client (flat name/value list). */
  responseHeaders: string[] | null
  responseBytes: number
  error: SessionProxyError | null
}

export interface ExchangeObserver {
  onResponseHead?: (x: Exchange) => void
  onResponseData?: (x: Exchange, chunk: Buffer) => void
  /** Called once per exchange, after success or failure. */
  onDone?: (x: Exchange) => void
}

/** What differs for requests that do not arrive as plain absolute-form proxy requests. */
export interface ForwardOptions {
  /**
   * The profile a CONNECT tunnel (or a profile port) was opened as: clients
   * send Proxy-Authorization only on CONNECT, so it is the profile of every
   * request inside; one naming another gets 403 SP_TUNNEL_PROFILE
   * (resolveTunnelProfileName).
   */
  profile?: string
  /** Reverse mode: rewrites response headers (Location) before they are sent. */
  rewriteResponseHeaders?: (headers: string[]) => void
}
