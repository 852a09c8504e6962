/**
 * The managed path, taken only by requests whose profile has an autopilot
 * rule for the host: the request body is kept (up to a limit) so the request
 * can be sent again; a logged-out answer triggers one login (shared by all
 * concurrent requests of the profile) and a replay; CSRF tokens are injected
 * into unsafe requests, and a CSRF rejection gets one token refresh and one
 * retry. Everything else behaves as on the fast path in forward.ts.
 *
 * Careful like the fast path: a client that goes away aborts its upstream
 * request (also one held while a login runs) and is never replayed; answers
 * the proxy throws away (the logged-out answer before a replay, a CSRF
 * rejection) are read only up to limits.loginMaxBodyBytes and
 * limits.loginStepTimeoutMs, then cut; one value goes per header name (the
 * autopilot's session value over a host default); a response whose cookie
 * changes could not be saved carries `x-session-proxy-persist: failed`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { Readable } from 'node:stream'
import type { Profile } from '../session/profiles.js'
import type { HostAutopilot, OriginAutopilot } from '../session/autopilot/host-autopilot.js'
import type { CapturedToken } from '../session/autopilot/csrf.js'
import { UNSAFE_METHODS } from '../session/autopilot/csrf.js'
import { toStepResponse } from '../session/autopilot/login-flow.js'
import { resolveStepUrl } from '../session/autopilot/login-flow.js'
import { cookiesFromSetCookie, type ResponseView } from '../session/autopilot/values.js'
import type { DefaultHeader } from '../session/host-defaults.js'
import { SessionProxyError } from '../errors.js'
import type { Exchange, ForwardOptions } from '../contracts/exchange.js'
import type { ProxyDeps } from '../contracts/proxy-deps.js'
import { allocateExchangeId, msSince } from './exchange-id.js'
import { appendVia, buildRequestHeaders, mergeCookieHeaders, type RequestHeaderInfo } from './headers.js'
import { HeldResponse, type ResponseHead } from './held-response.js'
import { jarCookieReader, logRejected, runLogin } from './login-runner.js'
import { asProxyError, PERSIST_FAILED_HEADER, sendProxyError } from './respond.js'
import { sendWithSession, type SessionRequestOptions } from './session-client.js'
import { parseTarget } from './target.js'
import type { Target } from './target.js'
import { mapUpstreamError } from './upstream-errors.js'
import { Flow, flowKind, type LocalAnswer } from '../pipeline/flow.js'
import { runErrorHooks, runHooks } from '../pipeline/hooks.js'
import type { CompiledHooks } from '../contracts/hooks.js'

/** Told to the client when its request could not be replayed but the session was renewed. */
export const RENEWED_HEADER = 'x-session-proxy-session'
const MAX_ATTEMPTS = 4

interface RequestBody {
  /** The whole body, when it fit the replay limit. */
  buffer: Buffer | null
  /** Otherwise a stream of it (can be sent once). */
  stream: Readable | null
}

async function readBody (req: IncomingMessage, limit: number): Promise<RequestBody> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>) {
    chunks.push(chunk)
    size += chunk.length
    if (size > limit) {
      // Too big to keep: send what was read, then the rest, as one stream.
      const rest = req
      async function * joined (): AsyncGenerator<Buffer> {
        yield * chunks
        for await (const c of rest as AsyncIterable<Buffer>) yield c
      }
      return { buffer: null, stream: Readable.from(joined(), { objectMode: false }) }
    }
  }
  return { buffer: Buffer.concat(chunks), stream: null }
}

function isFormBody (raw: readonly string[]): boolean {
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i]!.toLowerCase() === 'content-type') return /application\/x-www-form-urlencoded/i.test(raw[i + 1]!)
  }
  return false
}

/** Adds form-field CSRF tokens to a urlencoded body that lacks them. */
function withFormTokens (body: Buffer, fields: Array<[string, string]>): Buffer {
  if (fields.length === 0) return body
  const text = body.toString('latin1')
  const params = new URLSearchParams(text)
  let extra = ''
  for (const [name, value] of fields) {
    if (!params.has(name)) extra += `${text === '' && extra === '' ? '' : '&'}${encodeURIComponent(name)}=${encodeURIComponent(value)}`
  }
  return extra === '' ? body : Buffer.concat([body, Buffer.from(extra, 'latin1')])
}

function withoutContentLength (headers: string[]): string[] {
  const out: string[] = []
  for (let i = 0; i < headers.length; i += 2) if (headers[i]!.toLowerCase() !== 'content-length') out.push(headers[i]!, headers[i + 1]!)
  return out
}

function view (head: ResponseHead, body: string | null): ResponseView {
  return { headers: head.headers, setCookies: cookiesFromSetCookie(head.setCookies), body, contentType: head.contentType }
}

/** Inside the exchange: its client has gone, so nothing more is sent or replayed. */
class ClientGone extends Error {}

/**
 * A held response that can be cancelled before undici has connected: the
 * request may still wait in the pool for a free connection when its client
 * goes, and must not start then.
 */
class CancellableHeld extends HeldResponse {
  private cancelled = false

  override onConnect (abort: (err?: Error) => void): void {
    super.onConnect(abort)
    if (this.cancelled) abort(new Error('response no longer needed'))
  }

  override abort (): void {
    this.cancelled = true
    super.abort()
  }
}

const NO_BODY: RequestBody = { buffer: null, stream: null }

export class ManagedExchange {
  private readonly deps: ProxyDeps
  private readonly req: IncomingMessage
  private readonly res: ServerResponse
  private readonly target: Target
  private readonly profile: Profile
  private readonly info: RequestHeaderInfo
  private readonly pilot: HostAutopilot
  private readonly here: OriginAutopilot
  private readonly opts: ForwardOptions | undefined
  private readonly x: Exchange
  /** Aborts the requests this exchange makes on its own (CSRF refresh) when its client goes. */
  private readonly sideRequests = new AbortController()
  private current: CancellableHeld | null = null
  private clientGone = false
  /** Set when this exchange, or a login it waited for, changed the jar. */
  private cookiesChanged = false
  private logged = false
  /** The current attempt's flow, only when addon hooks are loaded. */
  private flow: Flow | null = null

  constructor (deps: ProxyDeps, req: IncomingMessage, res: ServerResponse, target: Target, profile: Profile, info: RequestHeaderInfo, pilot: HostAutopilot, started: number, opts: ForwardOptions | undefined) {
    this.deps = deps
    this.req = req
    this.res = res
    this.target = target
    this.profile = profile
    this.info = info
    this.pilot = pilot
    this.here = pilot.at(target)
    this.opts = opts
    this.x = { id: allocateExchangeId(), method: req.method!, target, profile, started, startedAt: Date.now(), requestHeaders: [], status: 0, responseHeaders: null, responseBytes: 0, error: null }
    // A client that resets must not become an unhandled 'error'.
    res.on('error', (err) => deps.log.debug({ req: this.x.id, err: err.message }, 'client connection error'))
    res.once('close', () => { if (!res.writableFinished) this.onClientGone() })
  }

  /** The request's URL, as capture and the events show it. */
  private get url (): string {
    return `${this.target.scheme}://${this.target.authority}${this.target.path}`
  }

  private onClientGone (): void {
    if (this.clientGone) return
    this.clientGone = true
    // Its upstream request (also one held while a login runs, or still
    // queued in the pool) and its own side requests stop now; a login it
    // joined goes on for the others.
    this.current?.abort()
    this.sideRequests.abort()
  }

  private checkClient (): void {
    if (this.clientGone) throw new ClientGone('client closed the connection')
  }

  async run (): Promise<void> {
    try {
      await this.exchange()
    } catch (err) {
      this.current?.abort()
      if (this.clientGone || err instanceof ClientGone) {
        this.done('client-closed')
        return
      }
      const e = err instanceof SessionProxyError ? err : mapUpstreamError(err, this.target.authority)
      this.x.status = e.statusCode
      this.x.error = e
      this.runErrorHooks(e)
      sendProxyError(this.res, e)
      this.done(e.code, e.message)
    }
  }

  private async exchange (): Promise<void> {
    const { here, profile, target, deps } = this
    const method = this.x.method
    const body: RequestBody = this.info.hasBody ? await readBody(this.req, this.pilot.replayMaxBytes) : NO_BODY
    const replayable = body.stream === null
    this.checkClient()
    await here.idle()
    let renewed = false
    let csrfRetried = false
    const csrf = here.session.csrf
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      this.checkClient()
      const jarCookie = jarCookieReader(profile, target)
      if (csrf !== null && UNSAFE_METHODS.has(method) && !csrf.hasToken(jarCookie)) {
        await this.refreshCsrf(false)
        this.checkClient()
      }
      const generation = here.login?.generation ?? 0
      const held = await this.send(body, jarCookieReader(profile, target))
      if (held === null) return
      const head = await held.head
      this.checkClient()

      let signal = this.pilot.loggedOut?.checkHead(head.status, head.headers, head.setCookies) ?? null
      let buffered: Buffer | null = null
      let complete = false
      if (signal === null && this.pilot.loggedOut?.needsBody(head.status, head.contentType) === true) {
        ({ body: buffered, complete } = await held.readAll(this.pilot.limits.loginMaxBodyBytes))
        if (complete) signal = this.pilot.loggedOut.checkBody(buffered.toString('latin1'))
      }

      // No login for an origin the rule does not log in for: the answer is delivered as it is.
      if (signal !== null && here.login !== null && !renewed) {
        deps.events.record(profile.name, { type: 'session.loggedOut', requestId: this.x.id, url: this.url, signal: signal.signal, detail: signal.detail })
        // The logged-out answer's cookies belong to an anonymous session that
        // the login replaces: they are not stored.
        if (!replayable && !complete) ({ body: buffered, complete } = await held.readAll(this.pilot.limits.loginMaxBodyBytes))
        else if (replayable) this.discard(held)
        await this.login(generation, 'logged-out')
        renewed = true
        // A request whose client has gone is never replayed.
        this.checkClient()
        if (replayable) {
          deps.events.record(profile.name, { type: 'request.replayed', requestId: this.x.id, url: this.url, originalRequestId: this.x.id, reason: `login after the session was seen logged out (${signal.signal})` })
          continue
        }
        // The body was streamed and is gone: give the original answer, say the session is renewed.
        await this.deliver(head, held, buffered, [RENEWED_HEADER, 'renewed; request not replayed (body too large to keep)'])
        return
      }

      if (head.setCookies !== null && profile.capture(head.setCookies, target.cookieUrl, this.x.id)) this.cookiesChanged = true
      this.captureTokens(head, buffered !== null && complete ? buffered.toString('latin1') : null)

      if (csrf !== null && !csrfRetried && replayable && csrf.isRejection(head.status, method, head.headers)) {
        this.discard(held)
        csrfRetried = true
        await this.refreshCsrf(true)
        this.checkClient()
        deps.events.record(profile.name, { type: 'request.replayed', requestId: this.x.id, url: this.url, originalRequestId: this.x.id, reason: 'csrf token refreshed after 403' })
        continue
      }

      await this.deliver(head, held, buffered, renewed ? [RENEWED_HEADER, 'renewed'] : null)
      return
    }
    throw new SessionProxyError('SP_AUTOPILOT_LOOP', 502, `gave up on ${target.authority} after ${MAX_ATTEMPTS} attempts (login and CSRF retries)`)
  }

  private runErrorHooks (e: SessionProxyError): void {
    const { deps } = this
    if (e.code === 'SP_ADDON_ERROR') deps.log.warn({ req: this.x.id, profile: this.profile.name, host: this.target.authority, err: e.message }, 'an addon hook failed; the client got 502 SP_ADDON_ERROR')
    const hooks = this.hooks
    if (hooks.error.length === 0) return
    const flow = this.flow ?? new Flow(this.x.id, this.profile.name, this.kind(), this.x.method, this.url, this.x.requestHeaders)
    flow.setError(e)
    runErrorHooks(hooks, flow, (err) => deps.log.warn({ req: this.x.id, profile: this.profile.name, err: err.message }, 'an addon error hook failed'))
  }

  /** This profile's addon hooks (the same lists for every profile unless an addon names `profiles`). */
  private get hooks (): CompiledHooks {
    return this.deps.hooks.forProfile(this.profile)
  }

  private kind (): 'http' | 'https' | 'reverse' {
    return flowKind(this.target.scheme, this.opts?.rewriteResponseHeaders !== undefined)
  }

  /** flow.respond() from a request hook: the client gets the addon's answer, the upstream is not asked. */
  private answerLocally (answer: LocalAnswer): void {
    const { res, x } = this
    x.status = answer.status
    x.responseHeaders = answer.headers
    res.writeHead(answer.status, answer.headers)
    for (const o of this.deps.observers) o.onResponseHead?.(x)
    x.responseBytes = answer.body.length
    for (const o of this.deps.observers) o.onResponseData?.(x, answer.body)
    res.end(x.method === 'HEAD' ? undefined : answer.body)
    this.done(undefined)
  }

  /**
   * One attempt: the request hooks (when addons are loaded) see it with its
   * cookies, defaults and autopilot values, then it is dispatched. Resolves
   * to null when a hook answered it (the answer is sent).
   */
  private async send (body: RequestBody, jarCookie: (name: string) => string | undefined): Promise<CancellableHeld | null> {
    const headers = this.buildHeaders(body, jarCookie)
    const hooks = this.hooks
    if (hooks.size !== 0) {
      const flow = this.flow = new Flow(this.x.id, this.profile.name, this.kind(), this.x.method, this.url, headers.headers)
      await runHooks(hooks, 'request', flow)
      this.checkClient()
      if (flow.answer !== null) { this.answerLocally(flow.answer); return null }
    }
    return this.dispatch(headers.headers, headers.payload)
  }

  private buildHeaders (body: RequestBody, jarCookie: (name: string) => string | undefined): { headers: string[], payload: Buffer | Readable | null } {
    const { deps, profile, target, here, info } = this
    const method = this.x.method
    // One value per header name: the autopilot's session value wins over a host default.
    const merged = new Map<string, DefaultHeader>()
    if (!profile.defaults.empty) for (const h of profile.defaults.forHost(target.authority, target.host, target.port)) merged.set(h[0], h)
    for (const h of here.requestHeaders(method, jarCookie)) merged.set(h[0], h)
    const cookie = mergeCookieHeaders(info.cookie, profile.jar.cookieHeader(target.cookieUrl, target.cookieUrl))
    let headers = buildRequestHeaders(this.req.rawHeaders, info, [...merged.values()], cookie, target.authority, appendVia(info.via, deps.via.entry))
    let payload: Buffer | Readable | null = body.stream
    const csrf = here.session.csrf
    if (body.buffer !== null) {
      payload = body.buffer
      if (csrf !== null && UNSAFE_METHODS.has(method) && isFormBody(this.req.rawHeaders)) payload = withFormTokens(body.buffer, csrf.formFields(jarCookie))
      headers = withoutContentLength(headers)
      headers.push('content-length', String(payload.length))
    }
    this.x.requestHeaders = headers
    return { headers, payload }
  }

  private dispatch (headers: string[], payload: Buffer | Readable | null): CancellableHeld {
    const { deps, target } = this
    const method = this.x.method
    const held = new CancellableHeld(deps.via.entry)
    this.current = held
    try {
      deps.pool.dispatch(target, { path: target.path, method, headers, body: payload }, held)
    } catch (err) {
      held.onError(err as Error)
    }
    return held
  }

  /**
   * Lets an answer nobody will see go, within limits.loginMaxBodyBytes and
   * limits.loginStepTimeoutMs: a short one returns its connection to the
   * pool, a long or slow one is cut.
   */
  private discard (held: CancellableHeld): void {
    const { loginStepTimeoutMs, loginMaxBodyBytes } = this.pilot.limits
    held.discard(loginMaxBodyBytes, loginStepTimeoutMs)
  }

  private sideOptions (): SessionRequestOptions {
    const limits = this.pilot.limits
    return { limits: { timeoutMs: limits.loginStepTimeoutMs, maxBodyBytes: limits.loginMaxBodyBytes }, signal: this.sideRequests.signal }
  }

  private recordTokens (found: CapturedToken[], refreshed: boolean): void {
    const rejected: Array<{ name: string, source: string, reason: string }> = []
    for (const t of found) {
      if (t.rejected !== undefined) { rejected.push({ name: t.name, source: t.source, reason: t.rejected }); continue }
      this.deps.events.record(this.profile.name, { type: refreshed || t.refreshed ? 'csrf.refreshed' : 'csrf.captured', requestId: this.x.id, url: this.url, name: t.name, source: t.source })
    }
    logRejected(this.deps, this.profile, this.target.authority, this.x.id, rejected)
  }

  private captureTokens (head: ResponseHead, body: string | null): void {
    this.recordTokens(this.here.capture(view(head, body), jarCookieReader(this.profile, this.target)), false)
  }

  /** Runs the profile's login for this host (once for all concurrent requests). */
  private async login (generation: number, trigger: string): Promise<void> {
    // Whether it ran here or was joined, this request now rides on its cookies.
    this.cookiesChanged = true
    await runLogin(this.deps, this.profile, this.pilot, this.target, this.x.id, generation, trigger)
  }

  /**
   * Fetches a fresh CSRF token with a safe request to this request's origin:
   * the refresh path (under the baseUrl's context path when the baseUrl is
   * this origin), or this URL. Tokens are kept per origin, so fetching one
   * elsewhere would be no use.
   */
  private async refreshCsrf (force: boolean): Promise<void> {
    const { here, profile, target, deps } = this
    const csrf = here.session.csrf
    if (csrf === null) return
    if (csrf.refreshPath === null && csrf.refreshHeaders.length === 0 && !force) return
    const origin = `${target.scheme}://${target.authority}`
    const url = csrf.refreshPath !== null ? resolveStepUrl(this.sameOriginBase() ?? origin, csrf.refreshPath) : `${origin}${target.path}`
    for (let i = 0; i < 2; i++) {
      const generation = here.login?.generation ?? 0
      let r
      try {
        r = await sendWithSession(deps, profile, { method: 'GET', url, headers: csrf.refreshHeaders }, this.x.id, here.requestHeaders('GET', () => undefined), this.sideOptions())
      } catch (err) {
        this.checkClient()
        if (err instanceof SessionProxyError && err.code.startsWith('SP_LOGIN_STEP_')) {
          throw new SessionProxyError('SP_CSRF_REFRESH_FAILED', 502, `fetching a CSRF token failed: ${err.message}`)
        }
        throw err
      }
      if (r.cookiesChanged) this.cookiesChanged = true
      const signal = this.pilot.loggedOut?.checkHead(r.status, r.headers, r.setCookies) ?? this.pilot.loggedOut?.checkBody(r.body) ?? null
      if (signal !== null && here.login !== null && i === 0) {
        deps.events.record(profile.name, { type: 'session.loggedOut', requestId: this.x.id, url: this.url, signal: signal.signal, detail: `${signal.detail} (while fetching a CSRF token)` })
        await this.login(generation, 'logged-out')
        this.checkClient()
        continue
      }
      this.recordTokens(here.capture(toStepResponse(r.status, r.headers, r.setCookies, r.body), jarCookieReader(profile, target)), true)
      return
    }
  }

  /** The baseUrl when it is this request's origin (its context path applies), else null. */
  private sameOriginBase (): string | null {
    let base
    try { base = parseTarget(this.here.baseUrl) } catch { return null }
    const t = this.target
    return base.scheme === t.scheme && base.host === t.host && base.port === t.port ? this.here.baseUrl : null
  }

  private async deliver (head: ResponseHead, held: CancellableHeld, prefix: Buffer | null, extraHeader: [string, string] | null): Promise<void> {
    const { res, x, profile } = this
    const headers = head.headers
    // Nothing acknowledged is lost: the cookie changes reach the disk (or
    // are known not to) before the client has the answer.
    if (profile.pendingWrite !== null) await profile.pendingWrite
    this.checkClient()
    if (this.cookiesChanged && profile.persistError !== null) {
      headers.push(PERSIST_FAILED_HEADER, 'failed')
      this.deps.log.error({ profile: profile.name, host: this.target.authority, req: x.id, err: profile.persistError.message }, 'response delivered, but its cookie changes could not be saved')
    }
    x.status = head.status
    if (extraHeader !== null) headers.push(extraHeader[0], extraHeader[1])
    this.opts?.rewriteResponseHeaders?.(headers)
    x.responseHeaders = headers
    if (this.flow !== null && this.hooks.response.length !== 0) {
      this.flow.setResponse(head.status, headers)
      try {
        await runHooks(this.hooks, 'response', this.flow)
      } catch (err) {
        held.abort()
        throw err
      }
      this.checkClient()
    }
    try {
      res.writeHead(head.status, head.statusText || undefined, headers)
    } catch (err) {
      // A head Node will not write (a value it refuses): this answer cannot be relayed.
      held.abort()
      throw new SessionProxyError('SP_UPSTREAM_BAD_RESPONSE', 502, `the response head from ${this.target.authority} cannot be relayed: ${(err as Error).message}`, { cause: err })
    }
    for (const o of this.deps.observers) o.onResponseHead?.(x)
    if (prefix !== null) { x.responseBytes += prefix.length; res.write(prefix) }
    let tokenBody: Buffer[] | null = this.pilot.wantsBody(head.contentType) && prefix === null ? [] : null
    let tokenBytes = 0
    // A page bigger than a login page is not read for tokens (limits.loginMaxBodyBytes).
    const tokenMax = this.pilot.limits.loginMaxBodyBytes
    const observers = this.deps.observers
    await held.pipe(res, (chunk) => {
      x.responseBytes += chunk.length
      for (const o of observers) o.onResponseData?.(x, chunk)
      if (tokenBody !== null) {
        tokenBytes += chunk.length
        if (tokenBytes > tokenMax) tokenBody = null
        else tokenBody.push(chunk)
      }
    })
    if (tokenBody !== null) this.captureTokens(head, Buffer.concat(tokenBody).toString('latin1'))
    this.done(undefined)
  }

  private done (error: string | undefined, message?: string): void {
    if (this.logged) return
    this.logged = true
    const x = this.x
    if (error === undefined) {
      this.deps.proxiedLine?.(x.id, x.method, this.target.authority, this.target.cookieUrl, x.status, msSince(x.started), this.profile.name)
    } else {
      this.deps.accessLog.info({ req: x.id, method: x.method, host: this.target.authority, url: this.target.cookieUrl, status: x.status, ms: msSince(x.started), profile: this.profile.name, error, detail: message }, 'proxy error')
    }
    for (const o of this.deps.observers) o.onDone?.(x)
  }
}

export function startManagedExchange (deps: ProxyDeps, req: IncomingMessage, res: ServerResponse, target: Target, profile: Profile, info: RequestHeaderInfo, pilot: HostAutopilot, started: number, opts: ForwardOptions | undefined): void {
  const fail = (err: unknown): void => {
    deps.log.error({ err }, 'managed exchange failed')
    try {
      if (!res.headersSent) sendProxyError(res, asProxyError(err))
      else res.destroy()
    } catch (inner) {
      deps.log.error({ err: inner }, 'could not answer after a managed exchange failed')
      res.destroy()
    }
  }
  try {
    new ManagedExchange(deps, req, res, target, profile, info, pilot, started, opts).run().catch(fail)
  } catch (err) {
    fail(err)
  }
}
