/**
 * The autopilot state of one profile towards one upstream host: its login
 * flow (run once at a time, with back-off after a failure), the login token,
 * CSRF tokens and header-carried sessions (Spring Session's X-Auth-Token).
 */
import type { AutopilotRule } from '../../config/autopilot-schema.js'
import { ConfigError } from '../../errors.js'
import type { DefaultHeader } from '../host-defaults.js'
import { compileHostPattern, type HostPattern } from '../../net/host-pattern.js'
import { CsrfRules, UNSAFE_METHODS, type CapturedToken } from './csrf.js'
import { DEFAULT_LOGGED_OUT, LOGIN_REDIRECT, LoggedOutDetector } from './logged-out.js'
import { LoginFailedError, LoginFlow, type LoginResult } from './login-flow.js'
import { headerValue, type ResponseView } from './values.js'

const DEFAULT_REPLAY_MAX = 1024 * 1024
const MAX_BACKOFF_MS = 5 * 60 * 1000

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

export class HostAutopilot {
  readonly pattern: HostPattern
  readonly rule: AutopilotRule
  readonly where: string
  readonly login: LoginFlow | null
  readonly loggedOut: LoggedOutDetector | null
  readonly csrf: CsrfRules | null
  readonly replayMaxBytes: number
  /** Bumped by every successful login: a request sent before it must not trigger another. */
  generation = 0
  loginToken: { header: string, value: string } | null = null
  lastLoginFailure: LoginFailedError | null = null
  private readonly sessionHeaderNames: string[]
  private readonly sessionHeaderValues = new Map<string, DefaultHeader>()
  private running: Promise<LoginResult> | null = null
  private retryAt = 0
  private backoffMs: number
  private readonly baseBackoffMs: number

  constructor (rule: AutopilotRule, where: string) {
    this.rule = rule
    this.where = where
    this.pattern = compileHostPattern(rule.match)
    this.login = rule.login !== undefined ? new LoginFlow(rule.login, `${where}.login`) : null
    const signals = rule.loggedOut ?? (this.login !== null ? loggedOutDefaults(rule) : undefined)
    try {
      this.loggedOut = signals !== undefined ? new LoggedOutDetector(signals) : null
    } catch (err) {
      throw new ConfigError(`${where}.loggedOut: invalid regular expression: ${(err as Error).message}`)
    }
    this.csrf = rule.csrf !== undefined && rule.csrf.length > 0 ? new CsrfRules(rule.csrf, `${where}.csrf`) : null
    this.sessionHeaderNames = (rule.sessionHeaders ?? []).map((h) => h.toLowerCase())
    this.replayMaxBytes = rule.replayMaxBytes ?? DEFAULT_REPLAY_MAX
    this.baseBackoffMs = (rule.loginBackoffSeconds ?? 2) * 1000
    this.backoffMs = this.baseBackoffMs
  }

  matches (host: string, port: number): boolean {
    return this.pattern.matches(host, port)
  }

  baseUrl (scheme: string, authority: string): string {
    return this.rule.baseUrl ?? `${scheme}://${authority}`
  }

  /** Whether token capture needs the body of a response with this content type. */
  wantsBody (contentType: string): boolean {
    if (this.csrf === null || this.csrf.bodyKinds.size === 0) return false
    return (this.csrf.bodyKinds.has('html') && /html/i.test(contentType)) || (this.csrf.bodyKinds.has('json') && /json/i.test(contentType))
  }

  /** What the autopilot adds to a request (the client's own headers win). */
  requestHeaders (method: string, jarCookie: (name: string) => string | undefined): DefaultHeader[] {
    const out: DefaultHeader[] = []
    if (this.loginToken !== null) out.push([this.loginToken.header.toLowerCase(), this.loginToken.header, this.loginToken.value])
    for (const h of this.sessionHeaderValues.values()) out.push(h)
    if (this.csrf !== null) {
      if (UNSAFE_METHODS.has(method)) out.push(...this.csrf.headers(jarCookie))
      else out.push(...this.csrf.safeRequestHeaders)
    }
    return out
  }

  /** Stores session headers and CSRF tokens a response carries. */
  capture (view: ResponseView, jarCookie: (name: string) => string | undefined): CapturedToken[] {
    this.captureSessionHeaders(view.headers)
    return this.csrf?.capture(view, jarCookie) ?? []
  }

  captureSessionHeaders (headers: readonly string[]): void {
    for (const lower of this.sessionHeaderNames) {
      const value = headerValue(headers, lower)
      if (value !== undefined && value !== '') {
        const name = this.rule.sessionHeaders!.find((h) => h.toLowerCase() === lower)!
        this.sessionHeaderValues.set(lower, [lower, name, value])
      }
    }
  }

  get sessionHeaders (): DefaultHeader[] {
    return [...this.sessionHeaderValues.values()]
  }

  clearSessionHeaders (): void {
    this.sessionHeaderValues.clear()
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
      throw new LoginFailedError(this.login?.name ?? 'login', this.lastLoginFailure.step, `${this.lastLoginFailure.message.replace(/^login "[^"]*" failed at step "[^"]*": /, '')} (failed recently; next attempt in ${wait} s)`)
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
      this.csrf?.forget()
      return { ran: true }
    } catch (err) {
      this.lastLoginFailure = err instanceof LoginFailedError ? err : new LoginFailedError(this.login?.name ?? 'login', 'run', (err as Error).message)
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

/** A profile's autopilot rules; the first rule matching a host applies. */
export class ProfileAutopilot {
  readonly rules: HostAutopilot[]
  private readonly byAuthority = new Map<string, HostAutopilot | null>()

  constructor (rules: AutopilotRule[], profile: string) {
    this.rules = rules.map((r, i) => new HostAutopilot(r, `profiles.${profile}.autopilot[${i}]`))
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
