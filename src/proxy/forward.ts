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
import { performance } from 'node:perf_hooks'
import type { Logger } from 'pino'
import type { Profile, ProfileRegistry } from '../session/profiles.js'
import { resolveProfileName } from '../session/resolve-profile.js'
import type { DefaultHeader } from '../session/host-defaults.js'
import { appendVia, buildRequestHeaders, buildResponseHeaders, checkVia, mergeCookieHeaders, scanRequestHeaders } from './headers.js'
import { asProxyError, sendProxyError } from './respond.js'
import type { Target } from './target.js'
import type { UpstreamPool } from './upstream.js'
import { mapUpstreamError } from './upstream-errors.js'

export interface ViaIdentity {
  /** A token unique to this proxy process, used to detect loops. */
  pseudonym: string
  /** What this proxy appends to Via: `1.1 <pseudonym>`. */
  entry: string
}

export interface ProxyDeps {
  pool: UpstreamPool
  profiles: ProfileRegistry
  log: Logger
  via: ViaIdentity
  /** proxyAuth users (name to password), or null when auth is off. */
  proxyUsers: ReadonlyMap<string, string> | null
}

const NO_DEFAULTS: readonly DefaultHeader[] = []

export function forwardRequest (deps: ProxyDeps, req: IncomingMessage, res: ServerResponse, target: Target): void {
  const started = performance.now()
  const raw = req.rawHeaders
  const info = scanRequestHeaders(raw)
  let profile: Profile
  try {
    checkVia(info.via, deps.via.pseudonym)
    profile = deps.profiles.get(resolveProfileName(info.proxyAuthorization, info.profile, deps.proxyUsers))
  } catch (err) {
    const e = asProxyError(err)
    sendProxyError(res, e)
    deps.log.info({ method: req.method, host: target.authority, status: e.statusCode, ms: msSince(started), error: e.code }, 'rejected')
    return
  }
  const cookie = mergeCookieHeaders(info.cookie, profile.jar.cookieHeader(target.cookieUrl, target.cookieUrl))
  const defaults = profile.defaults.empty ? NO_DEFAULTS : profile.defaults.forHost(target.authority, target.host, target.port)
  const headers = buildRequestHeaders(raw, info, defaults, cookie, target.authority, appendVia(info.via, deps.via.entry))
  const handler = new ForwardHandler(deps, req, res, target, profile, started)
  deps.pool.agent.dispatch({
    origin: deps.pool.originFor(target),
    path: target.path,
    method: req.method!,
    headers,
    body: info.hasBody ? req : null
  }, handler)
}

function msSince (started: number): number {
  return Math.round((performance.now() - started) * 100) / 100
}

class ForwardHandler {
  private readonly deps: ProxyDeps
  private readonly req: IncomingMessage
  private readonly res: ServerResponse
  private readonly target: Target
  private readonly profile: Profile
  private readonly started: number
  private abort: ((err?: Error) => void) | null = null
  private finished = false
  private status = 0

  constructor (deps: ProxyDeps, req: IncomingMessage, res: ServerResponse, target: Target, profile: Profile, started: number) {
    this.deps = deps
    this.req = req
    this.res = res
    this.target = target
    this.profile = profile
    this.started = started
  }

  onConnect (abort: (err?: Error) => void): void {
    if (this.abort === null) this.res.once('close', this.onClientClose)
    this.abort = abort
    if (this.res.destroyed) abort()
  }

  private readonly onClientClose = (): void => {
    if (!this.finished) {
      this.finished = true
      this.abort?.(new Error('client closed the connection'))
      this.logDone('client-closed')
    }
  }

  onHeaders (statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) {
      if (statusCode === 103) this.forwardEarlyHints(rawHeaders)
      return true
    }
    this.status = statusCode
    const { headers, setCookies } = buildResponseHeaders(rawHeaders, this.deps.via.entry)
    this.res.on('drain', resume)
    if (setCookies !== null && this.profile.jar.capture(setCookies, this.target.cookieUrl) && this.profile.pendingWrite !== null) {
      // The response is held until the journal write carrying its cookie
      // changes has reached the OS: once the client has the response, a
      // kill -9 cannot lose what it set. Unchanged cookies never wait.
      this.profile.pendingWrite.then(() => {
        if (this.finished) return
        this.res.writeHead(statusCode, statusText || undefined, headers)
        resume()
      }, () => {})
      return false
    }
    this.res.writeHead(statusCode, statusText || undefined, headers)
    return true
  }

  onData (chunk: Buffer): boolean {
    return this.res.write(chunk)
  }

  onComplete (): void {
    if (this.finished) return
    this.finished = true
    this.res.off('close', this.onClientClose)
    this.res.end()
    this.logDone(undefined)
  }

  onError (err: Error): void {
    if (this.finished) return
    this.finished = true
    this.res.off('close', this.onClientClose)
    const mapped = mapUpstreamError(err, this.target.authority)
    this.status = mapped.statusCode
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
    if (links.length > 0 && !this.res.headersSent) this.res.writeEarlyHints({ link: links })
  }

  private logDone (error: string | undefined, message?: string): void {
    const log = this.deps.log
    if (error === undefined) {
      if (log.isLevelEnabled('info')) {
        log.info({ method: this.req.method, host: this.target.authority, status: this.status, ms: msSince(this.started), profile: this.profile.name }, 'proxied')
      }
    } else {
      log.info({ method: this.req.method, host: this.target.authority, status: this.status, ms: msSince(this.started), profile: this.profile.name, error, detail: message }, 'proxy error')
    }
  }
}
