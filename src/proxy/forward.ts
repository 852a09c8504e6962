/**
 * The hot path: one proxied HTTP exchange over undici's dispatch API, modelled
 * on undici's docs/examples/proxy/proxy.js. Bodies stream both ways with
 * backpressure (undici pauses when res.write() returns false, resumes on
 * 'drain'); a client that goes away aborts the upstream request.
 *
 * undici 7 still accepts the older handler callbacks (onConnect/onHeaders/
 * onData/...) natively, with the response headers as raw Buffers; the newer
 * controller API is wrapped and re-parses every header set into an object.
 * The raw form is both faster and what keeps header bytes unchanged.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { UpstreamError, type SessionProxyError } from '../errors.js'
import { performance } from 'node:perf_hooks'
import type { Profile } from '../session/profiles.js'
import { resolveProfileName, resolveTunnelProfileName } from '../session/resolve-profile.js'
import type { DefaultHeader } from '../session/host-defaults.js'
import { appendVia, buildRequestHeaders, buildResponseHeaders, checkVia, isBodilessStatus, mergeCookieHeaders, relayableReason, removeHeader, scanRequestHeaders, type RequestHeaderInfo } from './headers.js'
import { asProxyError, PERSIST_FAILED_HEADER, sendProxyError } from './respond.js'
import type { Target } from './target.js'
import { mapUpstreamError } from './upstream-errors.js'
import { startManagedExchange } from './managed-exchange.js'
import { allocateExchangeId, msSince } from './exchange-id.js'
import type { Exchange, ForwardOptions } from '../contracts/exchange.js'
import type { ProxyDeps } from '../contracts/proxy-deps.js'
import type { FlowKind } from '../contracts/addon.js'
import { Flow, flowKind, type LocalAnswer } from '../pipeline/flow.js'
import { NO_HOOKS, runErrorHooks, runHooks } from '../pipeline/hooks.js'
import type { CompiledHooks } from '../contracts/hooks.js'

const NO_DEFAULTS: readonly DefaultHeader[] = []

/**
 * Checks for a loop, then finds the request's profile: the tunnel's (CONNECT
 * or profile port) profile, which the request may not contradict (403); else
 * its Proxy-Authorization, else X-Session-Profile, else "default". Throws a
 * typed error (400/403/407/508).
 */
export function resolveRequestProfile (deps: ProxyDeps, info: RequestHeaderInfo, opts: ForwardOptions | undefined): Profile {
  checkVia(info.via, deps.via.pseudonym)
  return deps.profiles.get(opts?.profile !== undefined
    ? resolveTunnelProfileName(info.proxyAuthorization, info.profile, deps.proxyUsers, opts.profile)
    : resolveProfileName(info.proxyAuthorization, info.profile, deps.proxyUsers))
}

export function forwardRequest (deps: ProxyDeps, req: IncomingMessage, res: ServerResponse, target: Target, opts?: ForwardOptions): void {
  const started = performance.now()
  const raw = req.rawHeaders
  const info = scanRequestHeaders(raw)
  let profile: Profile
  try {
    profile = resolveRequestProfile(deps, info, opts)
  } catch (err) {
    const e = asProxyError(err)
    sendProxyError(res, e)
    deps.accessLog.info({ method: req.method, host: target.authority, url: target.cookieUrl, status: e.statusCode, ms: msSince(started), error: e.code }, 'rejected')
    return
  }
  if (profile.autopilot !== null) {
    const pilot = profile.autopilot.forHost(target.authority, target.host, target.port)
    if (pilot !== null) {
      startManagedExchange(deps, req, res, target, profile, info, pilot, started, opts)
      return
    }
  }
  const cookie = mergeCookieHeaders(info.cookie, profile.jar.cookieHeader(target.cookieUrl, target.cookieUrl))
  let defaults = NO_DEFAULTS
  try {
    if (!profile.defaults.empty) defaults = profile.defaults.forHost(target.authority, target.host, target.port)
  } catch (err) {
    // A hosts[].auth secret that cannot be read now (502 SP_SECRET_UNAVAILABLE).
    const e = asProxyError(err)
    sendProxyError(res, e)
    deps.accessLog.info({ method: req.method, host: target.authority, status: e.statusCode, ms: msSince(started), error: e.code }, 'rejected')
    return
  }
  const headers = buildRequestHeaders(raw, info, defaults, cookie, target.authority, appendVia(info.via, deps.via.entry))
  const handler = new ForwardHandler(deps, res, req.method!, target, profile, started, headers, opts?.rewriteResponseHeaders)
  // With no addon loaded, this one check is all the hooks cost.
  if (deps.hooks.size !== 0) {
    const hooks = deps.hooks.forProfile(profile)
    if (hooks.size !== 0) {
      handler.startWithHooks(req, info.hasBody, flowKind(target.scheme, opts?.rewriteResponseHeaders !== undefined), hooks)
      return
    }
  }
  deps.pool.dispatch(target, {
    path: target.path,
    method: handler.method,
    headers,
    body: info.hasBody ? req : null
  }, handler)
}

/** The handler of the exchange a response belongs to, for the shared 'close' listener. */
const kForward = Symbol('session-proxy: forward handler')

/**
 * A client that goes away aborts the upstream request. One listener function
 * for every response (the handler hangs off the response), instead of a
 * closure and a once() wrapper per request.
 */
function onResponseClose (this: ServerResponse): void {
  const handler = (this as ServerResponse & { [kForward]?: ForwardHandler })[kForward]
  if (handler !== undefined) handler.onClientClose()
}

/**
 * undici's handler for one forwarded request, and the Exchange observers
 * see: one object per request.
 */
class ForwardHandler implements Exchange {
  readonly id: number
  readonly method: string
  readonly target: Target
  readonly profile: Profile
  readonly started: number
  readonly startedAt: number
  requestHeaders: string[]
  status = 0
  responseHeaders: string[] | null = null
  responseBytes = 0
  error: SessionProxyError | null = null
  private readonly deps: ProxyDeps
  private readonly res: ServerResponse
  private readonly observed: boolean
  private readonly rewrite: ((headers: string[]) => void) | undefined
  private abort: ((err?: Error) => void) | null = null
  private finished = false
  /**
   * While the head waits for the journal write: what undici still delivered
   * (it cannot always stay paused, see upstream.ts) and whether it ended.
   */
  private held: { chunks: Buffer[], complete: boolean, bodiless: boolean } | null = null
  /** Only when addon hooks are loaded. */
  private flow: Flow | null = null
  /** This profile's addon hooks (set when a flow exists). */
  private hooks: CompiledHooks = NO_HOOKS

  constructor (deps: ProxyDeps, res: ServerResponse, method: string, target: Target, profile: Profile, started: number, requestHeaders: string[], rewrite: ((headers: string[]) => void) | undefined) {
    this.id = allocateExchangeId()
    this.method = method
    this.target = target
    this.profile = profile
    this.started = started
    this.startedAt = Date.now()
    this.requestHeaders = requestHeaders
    this.deps = deps
    this.res = res
    this.observed = deps.observers.length > 0
    this.rewrite = rewrite
  }

  /**
   * The request hooks run before anything goes upstream. While an async hook
   * runs, the request body stays unread in the request stream (nothing
   * consumes it before dispatch), so no byte is lost.
   */
  startWithHooks (req: IncomingMessage, hasBody: boolean, kind: FlowKind, hooks: CompiledHooks): void {
    this.hooks = hooks
    const flow = this.flow = new Flow(this.id, this.profile.name, kind, this.method, `${this.target.scheme}://${this.target.authority}${this.target.path}`, this.requestHeaders)
    let pending: Promise<void> | undefined
    try {
      pending = runHooks(this.hooks, 'request', flow)
    } catch (err) {
      this.fail(asProxyError(err))
      return
    }
    if (pending === undefined) this.afterRequestHooks(req, hasBody)
    else pending.then(() => this.afterRequestHooks(req, hasBody), (err: unknown) => this.fail(asProxyError(err)))
  }

  private afterRequestHooks (req: IncomingMessage, hasBody: boolean): void {
    if (this.finished) return
    if (this.res.destroyed) {
      // The client went away while a hook ran: nothing goes upstream.
      this.finished = true
      this.logDone('client-closed')
      return
    }
    const answer = this.flow!.answer
    try {
      if (answer !== null) this.answerLocally(answer)
      else this.deps.pool.dispatch(this.target, { path: this.target.path, method: this.method, headers: this.requestHeaders, body: hasBody ? req : null }, this)
    } catch (err) {
      this.fail(asProxyError(err))
    }
  }

  /** flow.respond(): the client gets the addon's answer; the upstream is never asked. */
  private answerLocally (answer: LocalAnswer): void {
    this.status = answer.status
    this.responseHeaders = answer.headers
    const bodiless = isBodilessStatus(answer.status) || this.method === 'HEAD'
    if (!this.deliverHead(answer.status, '', answer.headers, bodiless) || this.finished) return
    this.responseBytes = answer.body.length
    if (this.observed) for (const o of this.deps.observers) o.onResponseData?.(this, answer.body)
    this.finished = true
    this.res.end(answer.body)
    this.logDone(undefined)
  }

  onConnect (abort: (err?: Error) => void): void {
    if (this.abort === null) {
      (this.res as ServerResponse & { [kForward]?: ForwardHandler })[kForward] = this
      this.res.on('close', onResponseClose)
    }
    this.abort = abort
    if (this.res.destroyed) abort()
  }

  /** The response closed: before it finished, that is the client going away. */
  onClientClose (): void {
    if (!this.finished) {
      this.finished = true
      this.abort?.(new Error('client closed the connection'))
      this.logDone('client-closed')
    }
  }

  onHeaders (statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (this.finished) return false
    try {
      return this.onResponseHead(statusCode, rawHeaders, resume, statusText)
    } catch (err) {
      // Nothing an upstream sends may throw out of undici's parser callback.
      this.refuseHead(err)
      return false
    }
  }

  private onResponseHead (statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) {
      if (statusCode === 103) this.forwardEarlyHints(rawHeaders)
      return true
    }
    this.status = statusCode
    const { headers, setCookies } = buildResponseHeaders(rawHeaders, this.deps.via.entry)
    if (this.rewrite !== undefined) this.rewrite(headers)
    const bodiless = isBodilessStatus(statusCode) || this.method === 'HEAD'
    if (statusCode === 204) removeHeader(headers, 'content-length')
    this.responseHeaders = headers
    this.res.on('drain', resume)
    const persist = setCookies !== null && this.profile.capture(setCookies, this.target.cookieUrl, this.id) ? this.profile.pendingWrite : null
    // Response hooks run once the jar has the response's cookies; an async one holds the head like the journal write does.
    let hooked: Promise<void> | undefined
    if (this.flow !== null && this.hooks.response.length !== 0) {
      this.flow.setResponse(statusCode, headers)
      try {
        hooked = runHooks(this.hooks, 'response', this.flow)
      } catch (err) {
        this.refuseHead(err, true)
        return false
      }
    }
    if (persist !== null || hooked !== undefined) {
      // The response is held until the journal write carrying its cookie
      // changes has settled: once the client has the response, a kill -9
      // cannot lose what it set. Unchanged cookies never wait.
      const held = this.held = { chunks: [] as Buffer[], complete: false, bodiless }
      // pendingWrite never rejects; if it ever did, the response would still go out, marked as not persisted.
      const deliver = (rejected: unknown): void => {
        if (this.finished) return
        this.held = null
        try {
          if (persist !== null) this.markPersistFailure(headers, rejected)
          if (!this.deliverHead(statusCode, statusText, headers, bodiless) || this.finished) return
          for (const chunk of held.chunks) this.onData(chunk)
          if (held.complete) this.onComplete()
          else resume()
        } catch (err) {
          this.refuseHead(err)
        }
      }
      if (hooked === undefined) {
        persist!.then(() => deliver(null), deliver)
        return false
      }
      // Both: the journal write's outcome, once the hooks are done (the write started before them).
      const written = persist === null ? null : persist.then(() => null, (e: unknown) => e ?? new Error('journal write failed'))
      hooked.then(async () => await written).then(deliver, (err: unknown) => {
        if (this.finished) return
        this.held = null
        this.refuseHead(err, true)
      })
      return false
    }
    return this.deliverHead(statusCode, statusText, headers, bodiless)
  }

  /** The persistence contract's consumer side: the write settled; did it reach the disk? */
  private markPersistFailure (headers: string[], rejected: unknown): void {
    const failure = this.profile.persistError ?? (rejected === null ? null : rejected instanceof Error ? rejected : new Error(String(rejected)))
    if (failure === null) return
    headers.push(PERSIST_FAILED_HEADER, 'failed')
    this.deps.log.warn({ req: this.id, profile: this.profile.name, host: this.target.authority, err: failure.message }, 'cookie changes from this response were not persisted; delivered with x-session-proxy-persist: failed')
  }

  /**
   * Writes the head; a bodiless response is finished here (undici may still
   * complain about its framing afterwards: too late to matter to the
   * client). Returns whether undici should go on reading.
   */
  private deliverHead (statusCode: number, statusText: string, headers: string[], bodiless: boolean): boolean {
    try {
      this.res.writeHead(statusCode, relayableReason(statusText), headers)
    } catch (err) {
      // Node refuses heads it cannot write (a character not allowed in a
      // header, a status it does not know how to send).
      this.refuseHead(err)
      return false
    }
    if (this.observed) for (const o of this.deps.observers) o.onResponseHead?.(this)
    if (bodiless) {
      this.finished = true
      this.res.end()
      this.logDone(undefined)
    }
    return true
  }

  /** The upstream's head cannot be relayed (or a response hook failed): the client gets a 502, the upstream request is dropped. */
  private refuseHead (err: unknown, fromHook = false): void {
    const mapped = fromHook ? asProxyError(err) : new UpstreamError('SP_UPSTREAM_BAD_RESPONSE', 502, this.target.authority, `upstream ${this.target.authority}: response head cannot be relayed: ${(err as Error)?.message ?? String(err)}`, { cause: err })
    // A refused writeHead leaves its status and reason behind on the response.
    this.res.statusMessage = ''
    try {
      this.fail(mapped)
    } catch {
      this.res.destroy(mapped)
    }
    this.abort?.(mapped)
  }

  onData (chunk: Buffer): boolean {
    if (this.finished) return true
    if (this.held !== null) {
      this.held.chunks.push(chunk)
      return false
    }
    this.responseBytes += chunk.length
    if (this.observed) for (const o of this.deps.observers) o.onResponseData?.(this, chunk)
    return this.res.write(chunk)
  }

  onComplete (): void {
    if (this.finished) return
    if (this.held !== null) { this.held.complete = true; return }
    this.finished = true
    this.res.end()
    this.logDone(undefined)
  }

  onError (err: Error): void {
    if (this.finished) return
    // A held 204/304 is whole at its head, whatever undici says about its framing.
    if (this.held?.bodiless === true) { this.held.complete = true; return }
    this.fail(mapUpstreamError(err, this.target.authority))
  }

  private fail (mapped: SessionProxyError): void {
    if (this.finished) return
    this.finished = true
    this.status = mapped.statusCode
    this.error = mapped
    const flow = this.flow
    if (mapped.code === 'SP_ADDON_ERROR') this.deps.log.warn({ req: this.id, profile: this.profile.name, host: this.target.authority, err: mapped.message }, 'an addon hook failed; the client got 502 SP_ADDON_ERROR')
    if (flow !== null && this.hooks.error.length !== 0) {
      flow.setError(mapped)
      runErrorHooks(this.hooks, flow, (e) => this.deps.log.warn({ req: this.id, profile: this.profile.name, err: e.message }, 'an addon error hook failed'))
    }
    if (this.res.headersSent) {
      // Too late for an error page: cut the connection so the client sees a
      // truncated body rather than a silently short one.
      this.res.destroy(mapped)
    } else {
      sendProxyError(this.res, mapped)
    }
    this.logDone(mapped.code, mapped.message)
  }

  private forwardEarlyHints (rawHeaders: Buffer[]): void {
    const links: string[] = []
    for (let i = 0; i < rawHeaders.length; i += 2) {
      if (rawHeaders[i]!.toString('latin1').toLowerCase() === 'link') links.push(rawHeaders[i + 1]!.toString('latin1'))
    }
    if (links.length === 0 || this.res.headersSent) return
    try {
      this.res.writeEarlyHints({ link: links })
    } catch {
      // A Link value Node will not write: the hints are optional, the response is not.
    }
  }

  private logDone (error: string | undefined, message?: string): void {
    if (error === undefined) {
      const line = this.deps.proxiedLine
      if (line !== null) line(this.id, this.method, this.target.authority, this.target.cookieUrl, this.status, msSince(this.started), this.profile.name)
    } else {
      this.deps.accessLog.info({ req: this.id, method: this.method, host: this.target.authority, url: this.target.cookieUrl, status: this.status, ms: msSince(this.started), profile: this.profile.name, error, detail: message }, 'proxy error')
    }
    if (this.observed) for (const o of this.deps.observers) o.onDone?.(this)
  }
}
