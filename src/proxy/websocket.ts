/**
 * WebSocket upgrades (plain proxied, inside an intercepted tunnel, and in
 * reverse mode). The handshake is an HTTP request like any other, so it gets
 * the profile's cookies, default headers, the pool's dispatcher (TLS policy,
 * upstream proxy, --connect-to) and the Set-Cookie capture; after the 101 the
 * two sockets are piped together and frames pass untouched.
 *
 * Why not http-proxy's ws(): it opens its own http(s).request per upgrade,
 * so it would bypass the undici pool, the per-host TLS policy, --connect-to
 * and the upstream proxy, and it hands back no hook for the 101's headers
 * before they reach the client. undici's dispatch with `upgrade` goes
 * through exactly the path normal requests take and returns the raw socket.
 */
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { performance } from 'node:perf_hooks'
import { SessionProxyError } from '../errors.js'
import type { Profile } from '../session/profiles.js'
import type { DefaultHeader } from '../session/host-defaults.js'
import { appendVia, buildRequestHeaders, buildResponseHeaders, mergeCookieHeaders, scanRequestHeaders } from './headers.js'
import type { ForwardOptions } from '../contracts/exchange.js'
import type { ProxyDeps } from '../contracts/proxy-deps.js'
import { allocateExchangeId } from './exchange-id.js'
import { resolveRequestProfile } from './forward.js'
import { joinSockets } from '../net/join-sockets.js'
import { asProxyError, PERSIST_FAILED_HEADER, sendRawError } from './respond.js'
import type { Target } from './target.js'
import { mapUpstreamError } from './upstream-errors.js'
import { Flow } from '../pipeline/flow.js'
import { NO_HOOKS, runErrorHooks, runHooks } from '../pipeline/hooks.js'
import type { CompiledHooks } from '../contracts/hooks.js'
import { statusText as reasonOf } from './respond.js'

function ignore (): void {}

/** Kept for existing importers: the raw-socket refusal writer lives in respond.ts. */
export const writeRawError = sendRawError

export interface UpgradeLimits {
  /** Bytes queued towards a client that does not read before the exchange is cut (limits.maxClientBufferBytes). */
  maxClientBufferBytes: number
  /** Called once the two sockets are joined after a 101, so shutdown can close them. */
  onWebSocket?: (client: Duplex, upstream: Duplex) => void
}

const DEFAULT_LIMITS: UpgradeLimits = { maxClientBufferBytes: 4 * 1024 * 1024 }

function isWebSocket (req: IncomingMessage): boolean {
  const upgrade = req.headers.upgrade
  return upgrade !== undefined && upgrade.split(',').some((t) => t.trim().toLowerCase() === 'websocket')
}

/** Forwards one `Upgrade: websocket` request and, on 101, joins the two sockets. */
export function forwardUpgrade (deps: ProxyDeps, req: IncomingMessage, client: Duplex, head: Buffer, target: Target, opts?: ForwardOptions, limits: UpgradeLimits = DEFAULT_LIMITS): void {
  const started = performance.now()
  // Node removes its own error listener from upgraded sockets: without one,
  // a client reset would be an uncaught exception. Closing is handled below.
  client.on('error', ignore)
  if (!isWebSocket(req)) {
    sendRawError(client, new SessionProxyError('SP_UPGRADE_UNSUPPORTED', 501, `protocol upgrade to ${JSON.stringify(req.headers.upgrade ?? '')} is not supported (only websocket)`))
    return
  }
  const raw = req.rawHeaders
  const info = scanRequestHeaders(raw)
  let profile: Profile
  let defaults: readonly DefaultHeader[] = []
  try {
    profile = resolveRequestProfile(deps, info, opts)
    // Reads a hosts[].auth secret: one that is gone refuses this upgrade only (SP_SECRET_UNAVAILABLE).
    if (!profile.defaults.empty) defaults = profile.defaults.forHost(target.authority, target.host, target.port)
  } catch (err) {
    const e = asProxyError(err)
    sendRawError(client, e)
    deps.log.info({ method: req.method, host: target.authority, url: target.cookieUrl, status: e.statusCode, error: e.code, websocket: true }, 'rejected')
    return
  }
  const cookie = mergeCookieHeaders(info.cookie, profile.jar.cookieHeader(target.cookieUrl, target.cookieUrl))
  // Connection and Upgrade are hop-by-hop and dropped here; undici writes
  // its own `connection: upgrade` / `upgrade: websocket`. The Sec-WebSocket-*
  // headers pass as they are, so key, version, protocols and extensions are
  // negotiated end to end.
  const headers = buildRequestHeaders(raw, info, defaults, cookie, target.authority, appendVia(info.via, deps.via.entry))
  const handler = new UpgradeHandler(deps, client, head, target, profile, started, opts?.rewriteResponseHeaders, limits)
  if (deps.hooks.size !== 0) {
    const hooks = deps.hooks.forProfile(profile)
    if (hooks.size !== 0) {
      handler.startWithHooks(req.method ?? 'GET', headers, hooks)
      return
    }
  }
  handler.dispatch(req.method ?? 'GET', headers)
}

function serializeHead (status: number, reason: string, headers: readonly string[]): string {
  let out = `HTTP/1.1 ${status} ${reason}\r\n`
  for (let i = 0; i < headers.length; i += 2) out += `${headers[i]!}: ${headers[i + 1]!}\r\n`
  return out + '\r\n'
}

class UpgradeHandler {
  private abort: ((err?: Error) => void) | null = null
  private done = false
  /** A non-101 answer is relayed as a plain response; this says its head went out. */
  private relaying = false
  /** Body chunks of a refusal that arrive while its head waits for the journal write. */
  private held: Buffer[] | null = null
  private resume: (() => void) | null = null
  private waitingDrain = false
  private readonly id = allocateExchangeId()
  /** Only when addon hooks are loaded. */
  private flow: Flow | null = null
  /** This profile's addon hooks (set when a flow exists). */
  private hooks: CompiledHooks = NO_HOOKS
  /** Bytes of an answer (101, a relayed refusal, an addon's) went to the client. */
  private answered = false

  constructor (
    private readonly deps: ProxyDeps,
    private readonly client: Duplex,
    private readonly head: Buffer,
    private readonly target: Target,
    private readonly profile: Profile,
    private readonly started: number,
    private readonly rewrite: ((headers: string[]) => void) | undefined,
    private readonly limits: UpgradeLimits
  ) {}

  dispatch (method: string, headers: string[]): void {
    try {
      this.deps.pool.dispatch(this.target, { path: this.target.path, method, headers, upgrade: 'websocket', body: null }, this)
    } catch (err) {
      this.onError(err as Error)
    }
  }

  /** The handshake goes through the request hooks first (flow.kind 'websocket'). */
  startWithHooks (method: string, headers: string[], hooks: CompiledHooks): void {
    this.hooks = hooks
    const flow = this.flow = new Flow(this.id, this.profile.name, 'websocket', method, `${this.target.scheme === 'https' ? 'wss' : 'ws'}://${this.target.authority}${this.target.path}`, headers)
    const next = (): void => {
      if (this.client.destroyed) return
      const answer = flow.answer
      if (answer === null) { this.dispatch(method, headers); return }
      // Answered by an addon: a plain response, and the connection closes.
      this.done = true
      this.answered = true
      answer.headers.push('connection', 'close')
      this.client.on('data', ignore)
      this.client.end(Buffer.concat([Buffer.from(serializeHead(answer.status, reasonOf(answer.status), answer.headers), 'latin1'), answer.body]))
      this.deps.log.info({ req: this.id, method, host: this.target.authority, url: this.target.cookieUrl, status: answer.status, ms: this.ms(), profile: this.profile.name, websocket: true }, 'answered by an addon')
    }
    let pending: Promise<void> | undefined
    try {
      pending = runHooks(this.hooks, 'request', flow)
    } catch (err) {
      this.refuse(asProxyError(err))
      return
    }
    if (pending === undefined) next()
    else pending.then(next, (err: unknown) => this.refuse(asProxyError(err)))
  }

  /** A hook failed before the head went out: the client gets the raw refusal. */
  private refuse (e: SessionProxyError): void {
    if (this.answered) return
    this.answered = true
    this.done = true
    this.client.off('close', this.onClientClose)
    this.abort?.(e)
    sendRawError(this.client, e)
    this.afterFailure(e)
  }

  private afterFailure (e: SessionProxyError): void {
    if (e.code === 'SP_ADDON_ERROR') this.deps.log.warn({ req: this.id, profile: this.profile.name, host: this.target.authority, err: e.message, websocket: true }, 'an addon hook failed; the client got 502 SP_ADDON_ERROR')
    const flow = this.flow
    if (flow === null || this.hooks.error.length === 0) return
    flow.setError(e)
    runErrorHooks(this.hooks, flow, (err) => this.deps.log.warn({ req: this.id, profile: this.profile.name, err: err.message }, 'an addon error hook failed'))
  }

  /**
   * Response hooks on the handshake's answer (101 or a refusal): undefined
   * when none is loaded or all ran synchronously, a promise while an async
   * one runs, null when one failed (the upgrade is refused with SP_ADDON_ERROR).
   */
  private runResponseHooks (status: number, headers: string[]): Promise<void> | undefined | null {
    const flow = this.flow
    if (flow === null || this.hooks.response.length === 0) return undefined
    flow.setResponse(status, headers)
    try {
      return runHooks(this.hooks, 'response', flow)
    } catch (err) {
      this.refuse(asProxyError(err))
      return null
    }
  }

  onConnect (abort: (err?: Error) => void): void {
    this.abort = abort
    if (this.client.destroyed) abort()
    else this.client.once('close', this.onClientClose)
  }

  private readonly onClientClose = (): void => {
    if (!this.done) this.abort?.(new Error('client closed the connection'))
  }

  /** Adds the persist-failed header when the journal write this response waited for failed. */
  private markPersist (headers: string[]): void {
    const failed = this.profile.persistError
    if (failed === null) return
    headers.push(PERSIST_FAILED_HEADER, 'failed')
    this.deps.log.warn({ req: this.id, host: this.target.authority, profile: this.profile.name, err: failed.message }, 'cookie changes of this response were not persisted')
  }

  onUpgrade (statusCode: number, rawHeaders: Buffer[] | string[] | null, upstream: Duplex): void {
    this.client.off('close', this.onClientClose)
    // undici strips every listener from the socket it hands over.
    upstream.on('error', ignore)
    const { headers, setCookies } = buildResponseHeaders(toBuffers(rawHeaders), this.deps.via.entry)
    this.rewrite?.(headers)
    headers.push('connection', 'Upgrade', 'upgrade', 'websocket')
    const changed = setCookies !== null && this.profile.capture(setCookies, this.target.cookieUrl, this.id)
    const finish = (waited: boolean): void => {
      if (this.client.destroyed || this.answered) { upstream.destroy(); return }
      this.done = true
      this.answered = true
      if (waited) this.markPersist(headers)
      this.client.write(serializeHead(statusCode, 'Switching Protocols', headers))
      if (this.head.length > 0) upstream.write(this.head)
      joinSockets(this.client, upstream, this.limits.maxClientBufferBytes)
      this.limits.onWebSocket?.(this.client, upstream)
      this.client.once('close', () => {
        this.deps.log.info({ req: this.id, host: this.target.authority, profile: this.profile.name, ms: this.ms() }, 'websocket closed')
      })
      this.deps.log.info({ req: this.id, method: 'GET', host: this.target.authority, url: this.target.cookieUrl, status: statusCode, ms: this.ms(), profile: this.profile.name, websocket: true }, 'proxied')
    }
    // As for plain responses: the client sees the 101 only once the cookie
    // changes it carries are in the journal.
    const pending = changed ? this.profile.pendingWrite : null
    const hooked = this.runResponseHooks(statusCode, headers)
    if (hooked === null) { upstream.destroy(); return }
    const go = (): void => {
      if (pending !== null) pending.then(() => finish(true), () => finish(true))
      else finish(false)
    }
    if (hooked === undefined) go()
    else hooked.then(go, (err: unknown) => { upstream.destroy(); this.refuse(asProxyError(err)) })
  }

  // A refusal (401, 403, a redirect to a login page) is an ordinary
  // response: relay it, with its cookies captured, and close.
  onHeaders (statusCode: number, rawHeaders: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true
    this.relaying = true
    this.resume = resume
    const { headers, setCookies } = buildResponseHeaders(rawHeaders, this.deps.via.entry)
    this.rewrite?.(headers)
    const changed = setCookies !== null && this.profile.capture(setCookies, this.target.cookieUrl, this.id)
    // The body is written as it arrives and delimited by closing the
    // connection, so any framing header of the upstream's is dropped.
    const kept: string[] = []
    for (let i = 0; i < headers.length; i += 2) {
      const lower = headers[i]!.toLowerCase()
      if (lower !== 'content-length' && lower !== 'transfer-encoding') kept.push(headers[i]!, headers[i + 1]!)
    }
    kept.push('connection', 'close')
    const writeHead = (waited: boolean): void => {
      this.answered = true
      if (waited) this.markPersist(kept)
      this.client.write(serializeHead(statusCode, statusText || 'Upgrade Refused', kept))
      this.deps.log.info({ req: this.id, method: 'GET', host: this.target.authority, url: this.target.cookieUrl, status: statusCode, ms: this.ms(), profile: this.profile.name, websocket: true }, 'upgrade refused by upstream')
    }
    const pending = changed ? this.profile.pendingWrite : null
    const hooked = this.runResponseHooks(statusCode, kept)
    if (hooked === null) return false
    if (pending === null && hooked === undefined) {
      writeHead(false)
      return true
    }
    // Held like the 101: relayed once its cookie changes are in the journal (and async response hooks are done).
    this.held = []
    const waited = (): Promise<boolean> => pending === null ? Promise.resolve(false) : pending.then(() => true, () => true)
    const ready = hooked === undefined ? waited() : hooked.then(waited)
    ready.then((persisted) => {
      const held = this.held ?? []
      this.held = null
      if (this.client.destroyed || this.answered) return
      writeHead(persisted)
      for (const chunk of held) this.write(chunk)
      if (this.done) this.client.end()
      else resume()
    }, (err: unknown) => this.refuse(asProxyError(err)))
    return false
  }

  onData (chunk: Buffer): boolean {
    if (this.held !== null) { this.held.push(chunk); return false }
    return this.write(chunk)
  }

  /**
   * Writes towards a client with backpressure: the upstream is paused while
   * the client's buffer is full and resumed on 'drain'; a client whose queue
   * grows past maxClientBufferBytes anyway is cut, with the upstream request.
   */
  private write (chunk: Buffer): boolean {
    if (this.client.destroyed) return false
    if (this.client.write(chunk)) return true
    if (this.client.writableLength > this.limits.maxClientBufferBytes) {
      this.done = true
      this.abort?.(new Error('client does not read'))
      this.client.destroy()
      return false
    }
    const resume = this.resume
    if (resume !== null && !this.waitingDrain) {
      this.waitingDrain = true
      this.client.once('drain', () => { this.waitingDrain = false; resume() })
    }
    return false
  }

  onComplete (): void {
    this.done = true
    this.client.off('close', this.onClientClose)
    if (this.held === null) this.client.end()
  }

  onError (err: Error): void {
    if (this.done) return
    this.done = true
    this.client.off('close', this.onClientClose)
    const mapped = mapUpstreamError(err, this.target.authority)
    if (this.relaying) this.client.destroy()
    else sendRawError(this.client, mapped)
    this.afterFailure(mapped)
    this.deps.log.info({ req: this.id, method: 'GET', host: this.target.authority, url: this.target.cookieUrl, status: mapped.statusCode, ms: this.ms(), profile: this.profile.name, error: mapped.code, detail: mapped.message, websocket: true }, 'proxy error')
  }

  private ms (): number {
    return Math.round((performance.now() - this.started) * 100) / 100
  }
}

function toBuffers (raw: Buffer[] | string[] | null): Buffer[] {
  if (raw === null) return []
  return raw.map((h) => typeof h === 'string' ? Buffer.from(h, 'latin1') : h)
}
