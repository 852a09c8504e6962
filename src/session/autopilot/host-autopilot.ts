/**
 * The autopilot of one profile towards the hosts of one rule.
 *
 * What a rule learns is kept like host-only cookies, per origin (scheme,
 * host and port): session headers (Spring Session's X-Auth-Token) and CSRF
 * tokens live in an OriginSession and only go back to the origin that sent
 * them. A login runs at exactly one origin, its login origin: the rule's
 * `baseUrl`, or else the one host the rule's `match` names (its port, else
 * the default port of the request's scheme). A wildcard `match` with a login
 * and no `baseUrl` is refused at load, so a password never goes to whatever
 * host matched. The login's state (one run at a time, back-off, the
 * generation, the login token) is a LoginState per login origin; the login
 * token, like a host-only cookie, is sent only to the login origin.
 */
import type { AutopilotRule } from '../../config/autopilot-schema.js'
import { ConfigError, SessionProxyError } from '../../errors.js'
import type { DefaultHeader } from '../host-defaults.js'
import { compileHostPattern, type HostPattern } from '../../net/host-pattern.js'
import { CsrfRules, UNSAFE_METHODS, type CapturedToken } from './csrf.js'
import { DEFAULT_LOGGED_OUT, LOGIN_REDIRECT, LoggedOutDetector } from './logged-out.js'
import { LoginFailedError, LoginFlow, type CredentialsSource, type LoginResult } from './login-flow.js'
import type { CredentialsConfig } from '../../contracts/settings.js'
import { credentialsFile } from '../credentials.js'
import { headerValue, unsendableReason, type ResponseView } from './values.js'

const DEFAULT_REPLAY_MAX = 1024 * 1024
const DEFAULT_MAX_ORIGINS = 1000
const MAX_BACKOFF_MS = 5 * 60 * 1000

/** The `limits.*` keys the autopilot obeys. */
export interface AutopilotLimits {
  /** Each login step, CSRF refresh and discarded answer must complete within this. */
  loginStepTimeoutMs: number
  /** The most the proxy reads of a login step's, refresh's or discarded answer's body. */
  loginMaxBodyBytes: number
}

export const DEFAULT_AUTOPILOT_LIMITS: AutopilotLimits = { loginStepTimeoutMs: 30_000, loginMaxBodyBytes: 1024 * 1024 }

/** Where a request goes, as far as the autopilot cares. */
export interface OriginRef {
  scheme: 'http' | 'https'
  /** Lower-case; IPv6 in brackets. */
  host: string
  port: number
}

export function originOf (o: OriginRef): string {
  return `${o.scheme}://${o.host}:${o.port}`
}

function defaultPort (scheme: string): number {
  return scheme === 'https' ? 443 : 80
}

function loggedOutDefaults (rule: AutopilotRule): AutopilotRule['loggedOut'] {
  switch (rule.login?.preset) {
    case 'tomcat-form':
      // Tomcat answers a lost session with its login page and status 200.
      return { status: [401], body: 'j_security_check' }
    case 'spring-form':
      return { status: [401], redirect: LOGIN_REDIRECT }
    default:
      return DEFAULT_LOGGED_OUT
  }
}

/** A value the autopilot refused when it captured it (it cannot be sent in a header). */
export interface RejectedValue {
  name: string
  source: string
  reason: string
}

/**
 * The login of one rule at one login origin: one run at a time (concurrent
 * callers share it), back-off after a failure, and the generation that keeps
 * a request sent before a login from triggering another.
 */
export class LoginState {
  readonly origin: string
  /** Bumped by every successful login: a request sent before it must not trigger another. */
  generation = 0
  loginToken: { header: string, value: string } | null = null
  lastLoginFailure: LoginFailedError | null = null
  private running: Promise<LoginResult> | null = null
  private retryAt = 0
  private backoffMs: number
  private readonly baseBackoffMs: number
  private readonly flowName: string
  private readonly onLoggedIn: () => void

  constructor (origin: string, flowName: string, backoffMs: number, onLoggedIn: () => void) {
    this.origin = origin
    this.flowName = flowName
    this.baseBackoffMs = this.backoffMs = backoffMs
    this.onLoggedIn = onLoggedIn
  }

  get isRunning (): boolean {
    return this.running !== null
  }

  /**
   * Runs the login unless one already succeeded since `sentGeneration` (then
   * the caller just replays). Concurrent callers share one run. After a
   * failure, later calls fail fast until the back-off has passed.
   */
  async ensureLoggedIn (sentGeneration: number, ignoreBackoff: boolean, run: () => Promise<LoginResult>): Promise<{ ran: boolean }> {
    if (this.generation !== sentGeneration) return { ran: false }
    if (this.running !== null) {
      await this.running
      return { ran: false }
    }
    if (!ignoreBackoff && Date.now() < this.retryAt && this.lastLoginFailure !== null) {
      const wait = Math.ceil((this.retryAt - Date.now()) / 1000)
      const last = this.lastLoginFailure
      throw new LoginFailedError(this.flowName, last.step, `${last.message.replace(/^login "[^"]*" failed at step "[^"]*": /, '')} (failed recently; next attempt in ${wait} s)`, last.code)
    }
    this.running = run()
    try {
      const result = await this.running
      this.generation++
      this.loginToken = result.token
      this.lastLoginFailure = null
      this.backoffMs = this.baseBackoffMs
      this.retryAt = 0
      // Spring clears CSRF tokens at login: the old ones are useless now.
      this.onLoggedIn()
      return { ran: true }
    } catch (err) {
      this.lastLoginFailure = err instanceof LoginFailedError ? err : new LoginFailedError(this.flowName, 'run', (err as Error).message)
      this.retryAt = Date.now() + this.backoffMs
      this.backoffMs = Math.min(this.backoffMs * 2, MAX_BACKOFF_MS)
      throw this.lastLoginFailure
    } finally {
      this.running = null
    }
  }

  /** Waits for a login in progress, so a request does not race it with a stale session. */
  async idle (): Promise<void> {
    if (this.running !== null) await this.running.catch(() => {})
  }
}

/** What the rule knows about one origin: its session headers and CSRF tokens. */
export class OriginSession {
  readonly origin: string
  /** The login origin whose login renews this origin's session, or null (no login here). */
  readonly loginOrigin: string | null
  readonly csrf: CsrfRules | null
  private readonly sessionHeaderValues = new Map<string, DefaultHeader>()
  private readonly sessionHeaderNames: ReadonlyMap<string, string>

  constructor (origin: string, loginOrigin: string | null, rule: AutopilotRule, where: string) {
    this.origin = origin
    this.loginOrigin = loginOrigin
    this.csrf = rule.csrf !== undefined && rule.csrf.length > 0 ? new CsrfRules(rule.csrf, `${where}.csrf`) : null
    this.sessionHeaderNames = new Map((rule.sessionHeaders ?? []).map((h) => [h.toLowerCase(), h]))
  }

  /** Stores the session headers a response carries; returns the values refused (not sendable). */
  captureSessionHeaders (headers: readonly string[]): RejectedValue[] {
    const rejected: RejectedValue[] = []
    for (const [lower, name] of this.sessionHeaderNames) {
      const value = headerValue(headers, lower)
      if (value === undefined || value === '') continue
      const bad = unsendableReason(value)
      if (bad !== null) { rejected.push({ name, source: `header:${name}`, reason: bad }); continue }
      this.sessionHeaderValues.set(lower, [lower, name, value])
    }
    return rejected
  }

  get sessionHeaders (): DefaultHeader[] {
    return [...this.sessionHeaderValues.values()]
  }

  clearSessionHeaders (): void {
    this.sessionHeaderValues.clear()
  }
}

/** The autopilot as one request sees it: its origin's session and the login that renews it. */
export interface OriginAutopilot {
  readonly pilot: HostAutopilot
  readonly origin: string
  readonly session: OriginSession
  /** Null when no login may run for this origin (the rule has none, or it logs in elsewhere only for its named host). */
  readonly login: LoginState | null
  /** The base URL login and refresh paths hang off for this request. */
  readonly baseUrl: string
  /** What the autopilot adds to a request (the client's own headers win). */
  requestHeaders: (method: string, jarCookie: (name: string) => string | undefined) => DefaultHeader[]
  /** Stores session headers and CSRF tokens a response carries. */
  capture: (view: ResponseView, jarCookie: (name: string) => string | undefined) => CapturedToken[]
  idle: () => Promise<void>
}

export class HostAutopilot {
  readonly pattern: HostPattern
  readonly rule: AutopilotRule
  readonly where: string
  readonly login: LoginFlow | null
  readonly loggedOut: LoggedOutDetector | null
  /** The rule's CSRF configuration (describe, refresh, rejection); tokens live per origin. */
  readonly csrf: CsrfRules | null
  readonly replayMaxBytes: number
  readonly limits: AutopilotLimits
  private readonly baseOrigin: string | null
  private readonly matchPort: number | null
  private readonly maxOrigins: number
  private readonly sessions = new Map<string, OriginSession>()
  private readonly logins = new Map<string, LoginState>()
  private readonly backoffMs: number

  constructor (rule: AutopilotRule, where: string, limits: AutopilotLimits = DEFAULT_AUTOPILOT_LIMITS, credentials: CredentialsSource | null = null) {
    this.rule = rule
    this.where = where
    this.limits = limits
    this.pattern = compileHostPattern(rule.match)
    this.baseOrigin = rule.baseUrl !== undefined ? parseBaseOrigin(rule.baseUrl, `${where}.baseUrl`) : null
    const port = /:(\d+)$/.exec(rule.match)
    this.matchPort = port !== null && !rule.match.endsWith(']') ? Number(port[1]) : null
    if (rule.login !== undefined && this.baseOrigin === null && rule.match.includes('*')) {
      throw new ConfigError(`${where}: match "${rule.match}" can match many hosts, and a login sends the credentials to the host it runs against. Give the rule a baseUrl (the one scheme://host:port to log in at), or match one host`)
    }
    this.login = rule.login !== undefined ? new LoginFlow(rule.login, `${where}.login`, credentials) : null
    const signals = rule.loggedOut ?? (this.login !== null ? loggedOutDefaults(rule) : undefined)
    try {
      this.loggedOut = signals !== undefined ? new LoggedOutDetector(signals) : null
    } catch (err) {
      throw new ConfigError(`${where}.loggedOut: invalid regular expression: ${(err as Error).message}`)
    }
    this.csrf = rule.csrf !== undefined && rule.csrf.length > 0 ? new CsrfRules(rule.csrf, `${where}.csrf`) : null
    this.replayMaxBytes = rule.replayMaxBytes ?? DEFAULT_REPLAY_MAX
    this.maxOrigins = rule.maxOrigins ?? DEFAULT_MAX_ORIGINS
    this.backoffMs = (rule.loginBackoffSeconds ?? 2) * 1000
  }

  matches (host: string, port: number): boolean {
    return this.pattern.matches(host, port)
  }

  /**
   * The one origin a login for a request to `o` runs at, or null when none
   * may: the baseUrl's origin; else `o` itself when it is the host and port
   * the rule names (the scheme's default port when match has none).
   */
  loginOriginFor (o: OriginRef): string | null {
    if (this.login === null) return null
    if (this.baseOrigin !== null) return this.baseOrigin
    return o.port === (this.matchPort ?? defaultPort(o.scheme)) ? originOf(o) : null
  }

  /** The base URL login and refresh paths of a request to `o` hang off. */
  baseUrl (scheme: string, authority: string): string {
    return this.rule.baseUrl ?? `${scheme}://${authority}`
  }

  /** Whether token capture needs the body of a response with this content type. */
  wantsBody (contentType: string): boolean {
    if (this.csrf === null || this.csrf.bodyKinds.size === 0) return false
    return (this.csrf.bodyKinds.has('html') && /html/i.test(contentType)) || (this.csrf.bodyKinds.has('json') && /json/i.test(contentType))
  }

  /** The session of origin `o` (created on first use; the least recently used beyond maxOrigins is dropped). */
  sessionAt (o: OriginRef): OriginSession {
    const key = originOf(o)
    let s = this.sessions.get(key)
    if (s !== undefined) {
      this.sessions.delete(key)
      this.sessions.set(key, s)
      return s
    }
    s = new OriginSession(key, this.loginOriginFor(o), this.rule, this.where)
    this.sessions.set(key, s)
    if (this.sessions.size > this.maxOrigins) this.sessions.delete(this.sessions.keys().next().value!)
    return s
  }

  /** The session of `o` if one exists, without creating it (explain). */
  peekSession (o: OriginRef): OriginSession | undefined {
    return this.sessions.get(originOf(o))
  }

  /** The login state of a login origin, if any. */
  loginState (origin: string): LoginState | undefined {
    return this.logins.get(origin)
  }

  private loginStateFor (origin: string): LoginState {
    let state = this.logins.get(origin)
    if (state !== undefined) return state
    state = new LoginState(origin, this.login?.name ?? 'login', this.backoffMs, () => this.forgetTokens(origin))
    this.logins.set(origin, state)
    if (this.logins.size > this.maxOrigins) {
      for (const [key, s] of this.logins) {
        if (!s.isRunning && key !== origin) { this.logins.delete(key); break }
      }
    }
    return state
  }

  /** A login at `loginOrigin` replaced the server session: the CSRF tokens of the origins it renews are stale. */
  private forgetTokens (loginOrigin: string): void {
    for (const s of this.sessions.values()) if (s.loginOrigin === loginOrigin) s.csrf?.forget()
  }

  /** Before a login at `loginOrigin`: the old session headers of the origins it renews must not go with it. */
  clearSessionHeadersFor (loginOrigin: string): void {
    for (const s of this.sessions.values()) if (s.loginOrigin === loginOrigin) s.clearSessionHeaders()
  }

  /** The autopilot for a request to `o`. */
  at (o: OriginRef): OriginAutopilot {
    const session = this.sessionAt(o)
    const loginOrigin = session.loginOrigin
    const login = loginOrigin !== null ? this.loginStateFor(loginOrigin) : null
    const authority = o.port === defaultPort(o.scheme) ? o.host : `${o.host}:${o.port}`
    const pilot = this.pilotFor(session, login)
    return {
      pilot: this,
      origin: session.origin,
      session,
      login,
      baseUrl: this.baseUrl(o.scheme, authority),
      requestHeaders: pilot.requestHeaders,
      capture: pilot.capture,
      idle: async () => { await login?.idle() }
    }
  }

  private pilotFor (session: OriginSession, login: LoginState | null): Pick<OriginAutopilot, 'requestHeaders' | 'capture'> {
    return {
      requestHeaders: (method, jarCookie) => {
        const out: DefaultHeader[] = []
        // The login token goes back only to the origin that issued it.
        const token = login !== null && login.origin === session.origin ? login.loginToken : null
        if (token !== null) out.push([token.header.toLowerCase(), token.header, token.value])
        out.push(...session.sessionHeaders)
        const csrf = session.csrf
        if (csrf !== null) {
          if (UNSAFE_METHODS.has(method)) out.push(...csrf.headers(jarCookie))
          else out.push(...csrf.safeRequestHeaders)
        }
        return out
      },
      capture: (view, jarCookie) => {
        const rejected: CapturedToken[] = session.captureSessionHeaders(view.headers).map((r) => ({ name: r.name, source: r.source, refreshed: false, rejected: r.reason }))
        return [...rejected, ...(session.csrf?.capture(view, jarCookie) ?? [])]
      }
    }
  }
}

function parseBaseOrigin (baseUrl: string, where: string): string {
  const m = /^(https?):\/\/(\[[0-9a-fA-F:.]+\]|[^/?#:@]+)(?::(\d{1,5}))?(?:[/?#]|$)/i.exec(baseUrl)
  if (m === null) throw new ConfigError(`${where}: ${JSON.stringify(baseUrl)} is not an http(s)://host[:port][/path] URL`)
  const scheme = m[1]!.toLowerCase() as 'http' | 'https'
  const port = m[3] !== undefined ? Number(m[3]) : defaultPort(scheme)
  if (port < 1 || port > 65535) throw new ConfigError(`${where}: port ${m[3]!} is out of range`)
  return originOf({ scheme, host: m[2]!.toLowerCase(), port })
}

/** A profile's autopilot rules; the first rule matching a host applies. */
export class ProfileAutopilot {
  readonly rules: HostAutopilot[]
  private readonly byAuthority = new Map<string, HostAutopilot | null>()

  /**
   * `credentials`: the block's credentials file; the logins of `profile` use
   * its row where a rule sets no username or password (read at start: a bad
   * file is a config error here).
   */
  constructor (rules: AutopilotRule[], profile: string, limits: AutopilotLimits = DEFAULT_AUTOPILOT_LIMITS, credentials?: CredentialsConfig) {
    const source = credentials !== undefined ? { profile, file: credentialsFile(credentials, `profiles.${profile}.credentials`) } : null
    this.rules = rules.map((r, i) => new HostAutopilot(r, `profiles.${profile}.autopilot[${i}]`, limits, source))
  }

  forHost (authority: string, host: string, port: number): HostAutopilot | null {
    let found = this.byAuthority.get(authority)
    if (found === undefined) {
      found = this.rules.find((r) => r.matches(host, port)) ?? null
      if (this.byAuthority.size > 4096) this.byAuthority.clear()
      this.byAuthority.set(authority, found)
    }
    return found
  }
}

/** Thrown when a request's origin has no login although its rule has one (see loginOriginFor). */
export function noLoginHere (pilot: HostAutopilot, origin: string): SessionProxyError {
  return new SessionProxyError('SP_NO_LOGIN', 404, `${pilot.where} logs in only at ${pilot.rule.baseUrl ?? `the host and port it names (${pilot.rule.match})`}, not for ${origin}`)
}
