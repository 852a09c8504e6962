/**
 * A login: a short sequence of requests. Presets expand to steps for the
 * common Java setups; a custom flow lists its own steps. Secrets are read
 * when the flow runs (so a rotated file is picked up) and never logged.
 */
import type { LoginConfig, LoginStep, ValueSource } from '../../config/autopilot-schema.js'
import type { SecretRef } from '../../contracts/settings.js'
import { ConfigError, SessionProxyError } from '../../errors.js'
import { readSecret } from '../host-defaults.js'
import type { CredentialsFile } from '../credentials.js'
import { cookiesFromSetCookie, headerValue, readValue, unsendableReason, type ResponseView } from './values.js'

/**
 * Codes a login failure carries (all 502): SP_LOGIN_FAILED (the server
 * refused or answered unexpectedly), SP_LOGIN_STEP_TIMEOUT and
 * SP_LOGIN_STEP_TOO_LARGE (a step broke limits.loginStepTimeoutMs or
 * limits.loginMaxBodyBytes), SP_SECRET_UNAVAILABLE (the password could not be
 * read: the message names its config key, never its value).
 */
export class LoginFailedError extends SessionProxyError {
  readonly step: string
  constructor (flow: string, step: string, reason: string, code = 'SP_LOGIN_FAILED') {
    super(code, 502, `login "${flow}" failed at step "${step}": ${reason}`)
    this.name = 'LoginFailedError'
    this.step = step
  }
}

export interface StepResponse extends ResponseView {
  status: number
}

/** Sends one login step; the caller adds cookies and stores Set-Cookie. */
export type StepSender = (req: { method: string, url: string, headers: Array<[string, string]>, body?: Buffer }) => Promise<StepResponse>

/** A profile's row in a credentials file: the username and password its logins use where the rule sets none. */
export interface CredentialsSource {
  profile: string
  file: CredentialsFile
}

export interface LoginResult {
  steps: number
  /** The login token (json-token preset or `token`), ready to send. */
  token: { header: string, value: string } | null
}

interface CompiledLogin {
  name: string
  steps: LoginStep[]
  token: LoginConfig['token'] | null
}

function presetSteps (config: LoginConfig, where: string): { name: string, steps: LoginStep[], token: LoginConfig['token'] | null } {
  const user = config.usernameField
  const pass = config.passwordField
  switch (config.preset) {
    case 'spring-form': {
      const path = config.loginPath ?? '/login'
      return {
        name: 'spring-form',
        token: null,
        steps: [
          { name: 'login page', method: 'GET', url: path, extract: { csrf: { html: { input: '_csrf' } } } },
          {
            name: 'submit credentials',
            method: 'POST',
            url: path,
            form: { [user ?? 'username']: '{{username}}', [pass ?? 'password']: '{{password}}', _csrf: '{{csrf}}' },
            expect: { status: [301, 302, 303], locationNot: '[?&]error' }
          }
        ]
      }
    }
    case 'tomcat-form':
      // Tomcat only accepts j_security_check inside a session that was sent
      // to the login page by a protected resource, so visit one first.
      return {
        name: 'tomcat-form',
        token: null,
        steps: [
          {
            name: 'protected page',
            method: 'GET',
            url: config.startPath ?? '{{requestUrl}}',
            // A live session shows the page itself, not the login form.
            loggedInUnlessBody: 'j_security_check',
            expect: { status: [200], hint: config.startPath === undefined ? 'set login.startPath to a URL under the security constraint, so a login can start from it' : undefined }
          },
          {
            name: 'j_security_check',
            method: 'POST',
            url: config.loginPath ?? 'j_security_check',
            form: { [user ?? 'j_username']: '{{username}}', [pass ?? 'j_password']: '{{password}}' },
            expect: { status: [301, 302, 303] }
          }
        ]
      }
    case 'json-token':
      return {
        name: 'json-token',
        token: config.token ?? { from: { json: config.tokenField ?? 'token' }, header: 'Authorization', prefix: 'Bearer ' },
        steps: [{
          name: 'token request',
          method: 'POST',
          url: config.loginPath ?? '/api/login',
          json: { [user ?? 'username']: '{{username}}', [pass ?? 'password']: '{{password}}' },
          expect: { status: [200, 201] }
        }]
      }
    case 'basic-session':
      return {
        name: 'basic-session',
        token: null,
        steps: [{
          name: 'basic login',
          method: 'GET',
          url: config.loginPath ?? '/',
          headers: { Authorization: '{{basicAuth}}' },
          expect: { status: [200, 204, 301, 302, 303] }
        }]
      }
    default:
      if (config.steps === undefined) throw new ConfigError(`${where}: give a preset (spring-form, tomcat-form, json-token, basic-session) or steps`)
      return { name: 'custom', steps: config.steps, token: config.token ?? null }
  }
}

/** Step errors whose code the login failure keeps. */
// An addon that fails on a login request keeps its own code: the client is told which addon and hook.
const STEP_CODES: ReadonlySet<string> = new Set(['SP_LOGIN_STEP_TIMEOUT', 'SP_LOGIN_STEP_TOO_LARGE', 'SP_ADDON_ERROR'])
const SECRET_VARS = /\{\{\s*(password|basicAuth)\s*\}\}/
const CREDENTIAL_VARS = /\{\{\s*(username|password|basicAuth)\s*\}\}/

/**
 * Secrets checked at start-up. A profile is opened lazily (and may be
 * reopened later); its flow is built again then, but a secret file that went
 * away since start must fail only the logins that need it, not the profile.
 */
const checkedSecrets = new WeakSet<SecretRef>()

/** Whether a step sends the password (in its URL, headers or body). */
function stepTexts (step: LoginStep): string[] {
  return [step.url, ...Object.values(step.headers ?? {}), ...Object.values(step.form ?? {}), step.json !== undefined ? JSON.stringify(step.json) : '']
}

function sendsSecret (step: LoginStep): boolean {
  return stepTexts(step).some((t) => SECRET_VARS.test(t))
}

function originOfUrl (url: string): string | null {
  const m = /^(https?):\/\/(\[[0-9a-fA-F:.]+\]|[^/?#:@]+)(?::(\d{1,5}))?(?:[/?#]|$)/i.exec(url)
  if (m === null) return null
  const scheme = m[1]!.toLowerCase()
  return `${scheme}://${m[2]!.toLowerCase()}:${m[3] !== undefined ? Number(m[3]) : scheme === 'https' ? 443 : 80}`
}

function checkRegex (source: string | undefined, where: string): void {
  if (source === undefined) return
  try { RegExp(source) } catch (err) { throw new ConfigError(`${where}: invalid regular expression: ${(err as Error).message}`) }
}

function fill (template: string, vars: ReadonlyMap<string, string>): string {
  return template.replace(/\{\{\s*([A-Za-z0-9_]+)\s*\}\}/g, (_m, name: string) => vars.get(name) ?? '')
}

function fillJson (value: unknown, vars: ReadonlyMap<string, string>): unknown {
  if (typeof value === 'string') return fill(value, vars)
  if (Array.isArray(value)) return value.map((v) => fillJson(v, vars))
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, fillJson(v, vars)]))
  return value
}

/** Joins a step URL to the base URL: absolute URLs stay, others hang off the base (context path kept). */
export function resolveStepUrl (baseUrl: string, url: string): string {
  if (/^https?:\/\//i.test(url)) return url
  return baseUrl.replace(/\/+$/, '') + '/' + url.replace(/^\/+/, '')
}

export class LoginFlow {
  readonly name: string
  private readonly compiled: CompiledLogin
  private readonly config: LoginConfig
  private readonly where: string
  /** Where the username and password come from when the rule sets none (null: nowhere, they are empty). */
  private readonly credentials: CredentialsSource | null

  constructor (config: LoginConfig, where: string, credentials: CredentialsSource | null = null) {
    this.config = config
    this.where = where
    this.compiled = presetSteps(config, where)
    // Only a flow that sends a username or password needs a row.
    const needs = (config.username === undefined || config.password === undefined) && this.compiled.steps.some((step) => CREDENTIAL_VARS.test(stepTexts(step).join('\n')))
    this.credentials = needs ? credentials : null
    this.name = this.compiled.name
    this.compiled.steps.forEach((step, i) => {
      const at = `${where}.steps[${i}]`
      checkRegex(step.loggedInUnlessBody, `${at}.loggedInUnlessBody`)
      checkRegex(step.expect?.locationNot, `${at}.expect.locationNot`)
      checkRegex(step.expect?.bodyNot, `${at}.expect.bodyNot`)
    })
    // Fail at start-up on a secret that cannot be read (once: see checkedSecrets).
    if (config.password !== undefined && !checkedSecrets.has(config.password)) {
      readSecret(config.password, `${where}.password`)
      checkedSecrets.add(config.password)
    }
  }

  get stepCount (): number {
    return this.compiled.steps.length
  }

  /**
   * Runs the steps. `loginOrigin` (scheme://host:port) is the one origin a
   * step that carries the password may go to, besides absolute URLs written
   * in the config itself: a URL built from a value the server sent, or from
   * the request, never gets the credentials.
   */
  async run (baseUrl: string, requestUrl: string, send: StepSender, jarCookie: (name: string) => string | undefined, loginOrigin: string | null = originOfUrl(baseUrl)): Promise<LoginResult> {
    const vars = new Map<string, string>()
    let row: { username: string, password: string } | null = null
    if (this.credentials !== null) {
      try {
        row = this.credentials.file.lookup(this.credentials.profile)
      } catch (err) {
        if (err instanceof SessionProxyError && err.code === 'SP_CREDENTIALS_MISSING') throw new LoginFailedError(this.name, 'credentials', err.message, err.code)
        throw new LoginFailedError(this.name, 'credentials', (err as Error).message, 'SP_SECRET_UNAVAILABLE')
      }
    }
    const username = this.config.username ?? row?.username ?? ''
    let password = row?.password ?? ''
    if (this.config.password !== undefined) {
      try {
        password = readSecret(this.config.password, `${this.where}.password`)
      } catch (err) {
        throw new LoginFailedError(this.name, 'secret', (err as Error).message, 'SP_SECRET_UNAVAILABLE')
      }
    }
    vars.set('username', username)
    vars.set('password', password)
    vars.set('basicAuth', 'Basic ' + Buffer.from(`${username}:${password}`, 'utf8').toString('base64'))
    vars.set('requestUrl', requestUrl)
    let last: StepResponse | null = null
    let index = 0
    for (const step of this.compiled.steps) {
      index++
      const stepName = step.name ?? `step ${index}`
      const method = step.method ?? (step.form !== undefined || step.json !== undefined ? 'POST' : 'GET')
      const headers: Array<[string, string]> = Object.entries(step.headers ?? {}).map(([k, v]) => [k, fill(v, vars)])
      let body: Buffer | undefined
      if (step.form !== undefined) {
        const form = new URLSearchParams()
        for (const [k, v] of Object.entries(step.form)) {
          const value = fill(v, vars)
          // An optional token that was not found is left out, not sent empty.
          if (value !== '' || !/\{\{/.test(v)) form.append(k, value)
        }
        body = Buffer.from(form.toString())
        headers.push(['content-type', 'application/x-www-form-urlencoded'])
      } else if (step.json !== undefined) {
        body = Buffer.from(JSON.stringify(fillJson(step.json, vars)))
        headers.push(['content-type', 'application/json'])
      }
      const url = resolveStepUrl(baseUrl, fill(step.url, vars))
      if (sendsSecret(step)) {
        const literal = /^https?:\/\//i.test(step.url) && !step.url.includes('{{')
        const to = originOfUrl(url)
        if (!literal && (to === null || to !== loginOrigin)) {
          throw new LoginFailedError(this.name, stepName, `refusing to send the credentials to ${to ?? JSON.stringify(url.slice(0, 100))}: they go only to ${loginOrigin ?? 'the baseUrl'} (or to an absolute URL written in the step)`)
        }
      }
      for (const [name, value] of headers) {
        const bad = unsendableReason(value)
        if (bad !== null) throw new LoginFailedError(this.name, stepName, `the value of header ${name} cannot be sent: ${bad}`)
      }
      let res: StepResponse
      try {
        res = await send({ method, url, headers, body })
      } catch (err) {
        const code = err instanceof SessionProxyError && STEP_CODES.has(err.code) ? err.code : 'SP_LOGIN_FAILED'
        throw new LoginFailedError(this.name, stepName, (err as Error).message, code)
      }
      const expect = step.expect
      if (expect?.status !== undefined && !expect.status.includes(res.status)) {
        const hint = expect.hint
        throw new LoginFailedError(this.name, stepName, `${method} ${url} answered ${res.status}, expected ${expect.status.join(' or ')}${hint !== undefined ? ` (${hint})` : ''}`)
      }
      const location = headerValue(res.headers, 'location')
      if (expect?.locationNot !== undefined && location !== undefined && new RegExp(expect.locationNot).test(location)) {
        throw new LoginFailedError(this.name, stepName, `redirected to ${location} (the server refused the credentials)`)
      }
      if (expect?.bodyNot !== undefined && res.body !== null && new RegExp(expect.bodyNot).test(res.body)) {
        throw new LoginFailedError(this.name, stepName, `the response matches /${expect.bodyNot}/`)
      }
      if (step.loggedInUnlessBody !== undefined && res.body !== null && !new RegExp(step.loggedInUnlessBody).test(res.body)) {
        return { steps: index, token: null }
      }
      for (const [name, source] of Object.entries(step.extract ?? {})) {
        const value = readValue(source, res, jarCookie)
        if (value !== undefined) vars.set(name, value)
      }
      last = res
    }
    return { steps: index, token: this.readToken(last, jarCookie) }
  }

  private readToken (last: StepResponse | null, jarCookie: (name: string) => string | undefined): LoginResult['token'] {
    const token = this.compiled.token
    if (token === null || token === undefined) return null
    const value = readValue(token.from as ValueSource, last, jarCookie)
    if (value === undefined || value === '') {
      throw new LoginFailedError(this.name, 'token', `the last response has no token at ${JSON.stringify(token.from)}`)
    }
    const full = (token.prefix ?? (token.header === undefined ? 'Bearer ' : '')) + value
    // Refused here, once: kept, it would make every later request fail.
    const bad = unsendableReason(full)
    if (bad !== null) throw new LoginFailedError(this.name, 'token', `the token at ${JSON.stringify(token.from)} cannot be sent in a header: ${bad}`)
    return { header: token.header ?? 'Authorization', value: full }
  }
}

export function toStepResponse (status: number, headers: string[], setCookies: string[] | null, body: string): StepResponse {
  const contentType = headerValue(headers, 'content-type') ?? ''
  return { status, headers, setCookies: cookiesFromSetCookie(setCookies), body, contentType }
}
