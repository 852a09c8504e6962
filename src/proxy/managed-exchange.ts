/**
 * The managed path, taken only by requests whose profile has an autopilot
 * rule for the host: the request body is kept (up to a limit) so the request
 * can be sent again; a logged-out answer triggers one login (shared by all
 * concurrent requests of the profile) and a replay; CSRF tokens are injected
 * into unsafe requests, and a CSRF rejection gets one token refresh and one
 * retry. Everything else behaves as on the fast path in forward.ts.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { Readable } from 'node:stream'
import type { Profile } from '../session/profiles.js'
import type { HostAutopilot } from '../session/autopilot/host-autopilot.js'
import { UNSAFE_METHODS } from '../session/autopilot/csrf.js'
import { LoginFailedError, toStepResponse } from '../session/autopilot/login-flow.js'
import { resolveStepUrl } from '../session/autopilot/login-flow.js'
import { cookiesFromSetCookie, type ResponseView } from '../session/autopilot/values.js'
import type { DefaultHeader } from '../session/host-defaults.js'
import { SessionProxyError } from '../errors.js'
import { allocateExchangeId, msSince, type Exchange, type ForwardOptions, type ProxyDeps } from './forward.js'
import { appendVia, buildRequestHeaders, mergeCookieHeaders, type RequestHeaderInfo } from './headers.js'
import { HeldResponse, type ResponseHead } from './held-response.js'
import { asProxyError, sendProxyError } from './respond.js'
import { sendWithSession } from './session-client.js'
import type { Target } from './target.js'
import { mapUpstreamError } from './upstream-errors.js'

/** Told to the client when its request could not be replayed but the session was renewed. */
export const RENEWED_HEADER = 'x-session-proxy-session'
/** A login page is small; anything bigger is not one. */
const LOGGED_OUT_BODY_MAX = 256 * 1024
const TOKEN_BODY_MAX = 512 * 1024
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

function jarCookieReader (profile: Profile, target: Target): (name: string) => string | undefined {
  let cookies: Map<string, string> | null = null
  return (name) => {
    cookies ??= new Map(profile.jar.jar.getCookiesSync(target.cookieUrl).map((c) => [c.key, c.value]))
    return cookies.get(name)
  }
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

export class ManagedExchange {
  private readonly deps: ProxyDeps
  private readonly req: IncomingMessage
  private readonly res: ServerResponse
  private readonly target: Target
  private readonly profile: Profile
  private readonly info: RequestHeaderInfo
  private readonly pilot: HostAutopilot
  private readonly opts: ForwardOptions | undefined
  private readonly x: Exchange
  private clientGone = false

  constructor (deps: ProxyDeps, req: IncomingMessage, res: ServerResponse, target: Target, profile: Profile, info: RequestHeaderInfo, pilot: HostAutopilot, started: number, opts: ForwardOptions | undefined) {
    this.deps = deps
    this.req = req
    this.res = res
    this.target = target
    this.profile = profile
    this.info = info
    this.pilot = pilot
    this.opts = opts
    this.x = { id: allocateExchangeId(), method: req.method!, target, profile, started, startedAt: Date.now(), requestHeaders: [], status: 0, responseHeaders: null, responseBytes: 0, error: null }
    res.once('close', () => { if (!res.writableFinished) this.clientGone = true })
  }

  async run (): Promise<void> {
    try {
      await this.exchange()
    } catch (err) {
      const e = err instanceof SessionProxyError ? err : mapUpstreamError(err, this.target.authority)
      this.x.status = e.statusCode
      this.x.error = e
      if (!this.clientGone) sendProxyError(this.res, e)
      this.done(e.code, e.message)
    }
  }

  private async exchange (): Promise<void> {
    const { pilot, profile, target, deps } = this
    const method = this.x.method
    const body: RequestBody = this.info.hasBody ? await readBody(this.req, pilot.replayMaxBytes) : { buffer: null, stream: null }
    const replayable = body.stream === null
    await pilot.idle()
    let renewed = false
    let csrfRetried = false
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      const jarCookie = jarCookieReader(profile, target)
      if (pilot.csrf !== null && UNSAFE_METHODS.has(method) && !pilot.csrf.hasToken(jarCookie)) {
        await this.refreshCsrf(false)
      }
      const generation = pilot.generation
      const held = this.send(body, jarCookieReader(profile, target))
      const head = await held.head
      if (this.clientGone) { held.abort(); return }

      let signal = pilot.loggedOut?.checkHead(head.status, head.headers, head.setCookies) ?? null
      let buffered: Buffer | null = null
      let complete = false
      if (signal === null && pilot.loggedOut?.needsBody(head.status, head.contentType) === true) {
        ({ body: buffered, complete } = await held.readAll(LOGGED_OUT_BODY_MAX))
        if (complete) signal = pilot.loggedOut.checkBody(buffered.toString('latin1'))
      }

      if (signal !== null && pilot.login !== null && !renewed) {
        deps.events.record(profile.name, { type: 'session.loggedOut', requestId: this.x.id, signal: signal.signal, detail: signal.detail })
        // The logged-out answer's cookies belong to an anonymous session that
        // the login replaces: they are not stored.
        if (!replayable && !complete) ({ body: buffered, complete } = await held.readAll(LOGGED_OUT_BODY_MAX))
        else if (replayable) held.discard()
        await this.login(generation, 'logged-out')
        renewed = true
        if (replayable) {
          deps.events.record(profile.name, { type: 'request.replayed', requestId: this.x.id, originalRequestId: this.x.id, reason: `login after the session was seen logged out (${signal.signal})` })
          continue
        }
        // The body was streamed and is gone: give the original answer, say the session is renewed.
        await this.deliver(head, held, buffered, [RENEWED_HEADER, 'renewed; request not replayed (body too large to keep)'])
        return
      }

      if (head.setCookies !== null) profile.capture(head.setCookies, target.cookieUrl, this.x.id)
      this.captureTokens(head, buffered !== null && complete ? buffered.toString('latin1') : null)

      if (pilot.csrf !== null && !csrfRetried && replayable && pilot.csrf.isRejection(head.status, method, head.headers)) {
        held.discard()
        csrfRetried = true
        await this.refreshCsrf(true)
        deps.events.record(profile.name, { type: 'request.replayed', requestId: this.x.id, originalRequestId: this.x.id, reason: 'csrf token refreshed after 403' })
        continue
      }

      await profile.pendingWrite
      await this.deliver(head, held, buffered, renewed ? [RENEWED_HEADER, 'renewed'] : null)
      return
    }
    throw new SessionProxyError('SP_AUTOPILOT_LOOP', 502, `gave up on ${target.authority} after ${MAX_ATTEMPTS} attempts (login and CSRF retries)`)
  }

  private send (body: RequestBody, jarCookie: (name: string) => string | undefined): HeldResponse {
    const { deps, profile, target, pilot, info } = this
    const method = this.x.method
    const defaults = profile.defaults.empty ? [] : profile.defaults.forHost(target.authority, target.host, target.port)
    const extra: DefaultHeader[] = [...defaults, ...pilot.requestHeaders(method, jarCookie)]
    const cookie = mergeCookieHeaders(info.cookie, profile.jar.cookieHeader(target.cookieUrl, target.cookieUrl))
    let headers = buildRequestHeaders(this.req.rawHeaders, info, extra, cookie, target.authority, appendVia(info.via, deps.via.entry))
    let payload: Buffer | Readable | null = body.stream
    if (body.buffer !== null) {
      payload = body.buffer
      if (pilot.csrf !== null && UNSAFE_METHODS.has(method) && isFormBody(this.req.rawHeaders)) payload = withFormTokens(body.buffer, pilot.csrf.formFields(jarCookie))
      headers = withoutContentLength(headers)
      headers.push('content-length', String(payload.length))
    }
    this.x.requestHeaders = headers
    const held = new HeldResponse(deps.via.entry)
    deps.pool.dispatch(target, { path: target.path, method, headers, body: payload }, held)
    return held
  }

  private captureTokens (head: ResponseHead, body: string | null): void {
    const jarCookie = jarCookieReader(this.profile, this.target)
    for (const t of this.pilot.capture(view(head, body), jarCookie)) {
      this.deps.events.record(this.profile.name, { type: t.refreshed ? 'csrf.refreshed' : 'csrf.captured', requestId: this.x.id, name: t.name, source: t.source })
    }
  }

  /** Runs the profile's login for this host (once for all concurrent requests). */
  private async login (generation: number, trigger: string): Promise<void> {
    await runLogin(this.deps, this.profile, this.pilot, this.target, this.x.id, generation, trigger)
  }

  /** Fetches a fresh CSRF token with a safe request (the refresh path, or this URL). */
  private async refreshCsrf (force: boolean): Promise<void> {
    const { pilot, profile, target, deps } = this
    const csrf = pilot.csrf
    if (csrf === null) return
    if (csrf.refreshPath === null && csrf.refreshHeaders.length === 0 && !force) return
    const url = csrf.refreshPath !== null ? resolveStepUrl(pilot.baseUrl(target.scheme, target.authority), csrf.refreshPath) : `${target.scheme}://${target.authority}${target.path}`
    for (let i = 0; i < 2; i++) {
      const generation = pilot.generation
      const r = await sendWithSession(deps, profile, { method: 'GET', url, headers: csrf.refreshHeaders }, this.x.id, pilot.requestHeaders('GET', () => undefined))
      const signal = pilot.loggedOut?.checkHead(r.status, r.headers, r.setCookies) ?? pilot.loggedOut?.checkBody(r.body) ?? null
      if (signal !== null && pilot.login !== null && i === 0) {
        deps.events.record(profile.name, { type: 'session.loggedOut', requestId: this.x.id, signal: signal.signal, detail: `${signal.detail} (while fetching a CSRF token)` })
        await this.login(generation, 'logged-out')
        continue
      }
      const jarCookie = jarCookieReader(profile, target)
      for (const t of pilot.capture(toStepResponse(r.status, r.headers, r.setCookies, r.body), jarCookie)) {
        deps.events.record(profile.name, { type: 'csrf.refreshed', requestId: this.x.id, name: t.name, source: t.source })
      }
      return
    }
  }

  private async deliver (head: ResponseHead, held: HeldResponse, prefix: Buffer | null, extraHeader: [string, string] | null): Promise<void> {
    const { res, x } = this
    x.status = head.status
    const headers = head.headers
    if (extraHeader !== null) headers.push(extraHeader[0], extraHeader[1])
    this.opts?.rewriteResponseHeaders?.(headers)
    x.responseHeaders = headers
    res.writeHead(head.status, head.statusText || undefined, headers)
    for (const o of this.deps.observers) o.onResponseHead?.(x)
    if (prefix !== null) { x.responseBytes += prefix.length; res.write(prefix) }
    let tokenBody: Buffer[] | null = this.pilot.wantsBody(head.contentType) && prefix === null ? [] : null
    let tokenBytes = 0
    const observers = this.deps.observers
    await held.pipe(res, (chunk) => {
      x.responseBytes += chunk.length
      for (const o of observers) o.onResponseData?.(x, chunk)
      if (tokenBody !== null) {
        tokenBytes += chunk.length
        if (tokenBytes > TOKEN_BODY_MAX) tokenBody = null
        else tokenBody.push(chunk)
      }
    })
    if (tokenBody !== null) this.captureTokens(head, Buffer.concat(tokenBody).toString('latin1'))
    this.done(undefined)
  }

  private done (error: string | undefined, message?: string): void {
    const x = this.x
    const fields = { req: x.id, method: x.method, host: this.target.authority, status: x.status, ms: msSince(x.started), profile: this.profile.name }
    if (error === undefined) this.deps.accessLog.info(fields, 'proxied')
    else this.deps.accessLog.info({ ...fields, error, detail: message }, 'proxy error')
    for (const o of this.deps.observers) o.onDone?.(x)
  }
}

/**
 * Runs (or joins) the login of `pilot` for `profile`, with events. Used by
 * the managed path and by the admin API's on-demand login.
 */
export async function runLogin (deps: ProxyDeps, profile: Profile, pilot: HostAutopilot, target: Target, requestId: number | null, generation: number, trigger: string, ignoreBackoff = false): Promise<{ ran: boolean }> {
  const flow = pilot.login
  if (flow === null) throw new SessionProxyError('SP_NO_LOGIN', 404, `profile "${profile.name}" has no login configured for ${target.authority}`)
  // A re-login replaces a session this process had; the first login of a
  // profile (also when a logged-out answer triggered it) is not one.
  const relogin = pilot.generation > 0
  return await pilot.ensureLoggedIn(generation, ignoreBackoff, async () => {
    const started = Date.now()
    const id = requestId ?? allocateExchangeId()
    deps.events.record(profile.name, { type: 'login.started', requestId, flow: flow.name, trigger, relogin })
    pilot.clearSessionHeaders()
    try {
      const result = await flow.run(
        pilot.baseUrl(target.scheme, target.authority),
        `${target.scheme}://${target.authority}${target.path}`,
        async (req) => {
          const r = await sendWithSession(deps, profile, { method: req.method, url: req.url, headers: req.headers, body: req.body }, id, pilot.sessionHeaders)
          pilot.captureSessionHeaders(r.headers)
          return toStepResponse(r.status, r.headers, r.setCookies, r.body)
        },
        jarCookieReader(profile, target)
      )
      deps.events.record(profile.name, { type: 'login.succeeded', requestId, flow: flow.name, steps: result.steps, durationMs: Date.now() - started, relogin })
      deps.log.info({ profile: profile.name, host: target.authority, flow: flow.name, ms: Date.now() - started }, 'logged in')
      return result
    } catch (err) {
      const e = err instanceof LoginFailedError ? err : new LoginFailedError(flow.name, 'run', (err as Error).message)
      deps.events.record(profile.name, { type: 'login.failed', requestId, flow: flow.name, steps: flow.stepCount, durationMs: Date.now() - started, relogin, error: e.message })
      deps.log.warn({ profile: profile.name, host: target.authority, flow: flow.name, error: e.message }, 'login failed')
      throw e
    }
  })
}

export function startManagedExchange (deps: ProxyDeps, req: IncomingMessage, res: ServerResponse, target: Target, profile: Profile, info: RequestHeaderInfo, pilot: HostAutopilot, started: number, opts: ForwardOptions | undefined): void {
  void new ManagedExchange(deps, req, res, target, profile, info, pilot, started, opts).run().catch((err: unknown) => {
    deps.log.error({ err }, 'managed exchange failed')
    if (!res.headersSent) sendProxyError(res, asProxyError(err))
  })
}
