/**
 * The shared upstream pool and how each upstream is reached:
 * - curl-style --connect-to routing: the jar and Host header keep the
 *   requested HOST:PORT, only the TCP connection goes to HOST2:PORT2;
 * - TLS policy for https upstreams: the system roots plus `upstream.ca`,
 *   plus a per-host CA or, for test servers, no verification;
 * - an upstream HTTP proxy (`upstream.proxy`, else HTTPS_PROXY/HTTP_PROXY
 *   with NO_PROXY when set): plain http in absolute form, https by CONNECT;
 * - one retry of an idempotent, bodiless request when a reused keep-alive
 *   connection was closed before any byte of its response arrived.
 *
 * Each distinct (proxy, TLS policy) pair gets one undici dispatcher, created
 * on first use and cached, so keep-alive pooling works per policy. With no
 * rules and no proxy every request takes the single default Agent, as before.
 *
 * The upstream proxy is spoken to by plain Agents, not undici's ProxyAgent:
 * ProxyAgent turns the flat header list into an object (repeated headers
 * collapse to the last one), throws synchronously on some headers, and for
 * plain http wraps the handler's onHeaders without passing its return value
 * or the status text on. A held response (onHeaders returning false while
 * the jar write is pending) then kept flowing, and its body reached the
 * client before the head: a bare `200 OK`.
 */
import diagnostics from 'node:diagnostics_channel'
import { readFileSync } from 'node:fs'
import http from 'node:http'
import https from 'node:https'
import net, { type Socket } from 'node:net'
import tls from 'node:tls'
import type { Logger } from 'pino'
import { createRequire } from 'node:module'
import type { Dispatcher } from 'undici'

// Only the dispatchers and the request API, not undici's index: the index
// also loads fetch, WebSocket, caches and mocks, which double its load time
// (measured: ~45 vs ~110 ms), all of it before the first proxied request can
// be served. These are internal paths, so any surprise falls back to the
// index.
const load = createRequire(import.meta.url)
type Undici = typeof import('undici')
function loadDispatchers (): Pick<Undici, 'Agent' | 'Pool' | 'buildConnector'> {
  try {
    const Dispatcher = load('undici/lib/dispatcher/dispatcher.js') as { prototype: Record<string, unknown> }
    // What undici's index does: the request API (connect, request, ...) on every dispatcher.
    if (typeof Dispatcher.prototype.connect !== 'function') Object.assign(Dispatcher.prototype, load('undici/lib/api/index.js'))
    return {
      Agent: load('undici/lib/dispatcher/agent.js') as Undici['Agent'],
      Pool: load('undici/lib/dispatcher/pool.js') as Undici['Pool'],
      buildConnector: load('undici/lib/core/connect.js') as Undici['buildConnector']
    }
  } catch {
    return load('undici') as Undici
  }
}
const { Agent, Pool, buildConnector } = loadDispatchers()

/** undici's symbol for a socket's HTTP/1 parser (an internal, so looked up defensively). */
function parserSymbol (): symbol | null {
  try {
    const symbols = load('undici/lib/core/symbols.js') as { kParser?: unknown }
    return typeof symbols.kParser === 'symbol' ? symbols.kParser : null
  } catch {
    return null
  }
}
const kParser = parserSymbol()

interface H1Parser {
  paused: boolean
  ptr: number | null
  llhttp: { llhttp_resume: (ptr: number) => void }
  socket: Socket
  execute: (chunk: Buffer) => void
  finish: () => Error | null
}

const EMPTY = Buffer.alloc(0)
let parserPatched = false

/**
 * undici 7 (up to 7.30.2, the last 7.x) cannot end a connection while its
 * parser is paused: a response held at its head until the jar write
 * settles, or a body under backpressure, whose last bytes were already read
 * when the upstream closes (tinyproxy closes after every response):
 * - with `Connection: close` (or HTTP/1.0) the whole process dies of an
 *   uncatchable `AssertionError: assert(!this.paused)` (nodejs/undici#5360,
 *   fixed in undici 8 by #5474, which needs Node 22);
 * - without it, the finished response fails as "other side closed".
 * Until then, the same fix as #5474: a paused parser whose connection ends
 * is resumed and driven past what it already holds (the handlers buffer what
 * they are given), before undici looks at it.
 */
function drivePausedParser (parser: H1Parser): void {
  for (let round = 0; parser.paused && parser.ptr !== null && round < 64; round++) {
    parser.llhttp.llhttp_resume(parser.ptr)
    parser.paused = false
    parser.execute((parser.socket.read() as Buffer | null) ?? EMPTY)
  }
  if (parser.paused && parser.ptr !== null) {
    parser.llhttp.llhttp_resume(parser.ptr)
    parser.paused = false
  }
}

/** Runs first on every upstream socket's 'end'. */
function onUpstreamEnd (this: Socket): void {
  const parser = (this as unknown as Record<symbol, H1Parser | null | undefined>)[kParser!]
  if (parser !== undefined && parser !== null && parser.paused) drivePausedParser(parser)
}

function patchPausedFinish (parser: H1Parser): void {
  parserPatched = true
  const proto = Object.getPrototypeOf(parser) as H1Parser
  const finish = proto.finish
  if (typeof finish !== 'function' || typeof proto.execute !== 'function') return
  // finish() is also reached from a reset or a close without 'end'.
  proto.finish = function (this: H1Parser): Error | null {
    drivePausedParser(this)
    if (this.ptr === null) return null
    return finish.call(this)
  }
}
// eslint-disable-next-line @typescript-eslint/no-redeclare -- the type of the lazily loaded class of the same name
type Agent = import('undici').Agent
type Connector = import('undici').buildConnector.connector
import { ConfigError, UpstreamError } from '../errors.js'
import type { PoolConfig, UpstreamConfig } from '../config/schema.js'
import { compileHostPattern, type HostPattern } from '../net/host-pattern.js'
import type { Target } from './target.js'
import { upstreamProxyError } from './upstream-errors.js'

export interface ConnectToRule {
  host: string
  port: number | null
  toHost: string
  toPort: number | null
}

function splitHostPort (text: string, where: string): [string, number | null, string] {
  let host: string
  let rest: string
  if (text.startsWith('[')) {
    const close = text.indexOf(']')
    host = text.slice(0, close + 1)
    rest = text.slice(close + 1)
    if (!rest.startsWith(':')) throw new ConfigError(`${where}: expected ':' after ${host}`)
    rest = rest.slice(1)
  } else {
    const colon = text.indexOf(':')
    if (colon === -1) throw new ConfigError(`${where}: expected HOST:PORT:HOST2:PORT2`)
    host = text.slice(0, colon)
    rest = text.slice(colon + 1)
  }
  const colon = rest.indexOf(':')
  const portText = colon === -1 ? rest : rest.slice(0, colon)
  const after = colon === -1 ? '' : rest.slice(colon + 1)
  if (portText !== '' && (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535)) {
    throw new ConfigError(`${where}: "${portText}" is not a port number`)
  }
  return [host.toLowerCase(), portText === '' ? null : Number(portText), after]
}

/** Parses curl's --connect-to HOST:PORT:HOST2:PORT2 (empty parts mean "any" / "same"). */
export function parseConnectTo (spec: string, where = `connectTo "${spec}"`): ConnectToRule {
  const [host, port, rest] = splitHostPort(spec, where)
  const [toHost, toPort, extra] = splitHostPort(rest + ':', where)
  if (extra !== '') throw new ConfigError(`${where}: expected HOST:PORT:HOST2:PORT2`)
  return { host, port, toHost, toPort }
}

/** How an https upstream's certificate is checked. */
interface TlsPolicy {
  /** Stable key for the dispatcher cache. */
  id: string
  /** Trusted roots; undefined keeps Node's defaults (bundled roots and NODE_EXTRA_CA_CERTS). */
  ca: string[] | undefined
  insecure: boolean
  /** Where it is configured, for the insecure warning. */
  where: string
}

interface TlsRule {
  pattern: HostPattern
  policy: TlsPolicy
}

interface NoProxyEntry {
  host: string
  port: number
}

const DEFAULT_POLICY: TlsPolicy = { id: 'default', ca: undefined, insecure: false, where: 'default' }

export const EMPTY_UPSTREAM: UpstreamConfig = { ca: null, proxy: null, noProxy: null, tls: [], http2: false }

function readBundle (file: string, where: string): string {
  let pem: string
  try {
    pem = readFileSync(file, 'utf8')
  } catch (err) {
    throw new ConfigError(`${where}: cannot read CA bundle ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err })
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) throw new ConfigError(`${where}: ${file} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`)
  return pem
}

function checkProxyUrl (raw: string, where: string): string {
  let u: URL
  try {
    u = new URL(raw)
  } catch {
    throw new ConfigError(`${where}: "${raw}" is not a URL (expected http://[user:password@]host:port)`)
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ConfigError(`${where}: "${u.protocol}" proxies are not supported (use http:// or https://)`)
  return u.href
}

/** NO_PROXY as curl and undici read it: host suffixes, optional :port, `*` for all. */
function parseNoProxy (list: readonly string[]): NoProxyEntry[] | 'all' {
  const out: NoProxyEntry[] = []
  for (const raw of list.flatMap((l) => l.split(/[\s,]+/))) {
    if (raw === '') continue
    if (raw === '*') return 'all'
    const m = /^(.+):(\d+)$/.exec(raw)
    out.push({ host: (m !== null ? m[1]! : raw).replace(/^\*?\./, '').replace(/^\[|\]$/g, '').toLowerCase(), port: m !== null ? Number(m[2]) : 0 })
  }
  return out
}

/** How one upstream is reached. */
interface Route {
  dispatcher: Dispatcher
  /**
   * Plain http through an upstream proxy: the request line carries the
   * absolute URL and, when the proxy URL has credentials, Proxy-Authorization.
   */
  absolute: { authorization: string | null, proxy: string } | null
}

function proxyAuthorization (proxy: URL): string | null {
  if (proxy.username === '' && proxy.password === '') return null
  return 'Basic ' + Buffer.from(`${decodeURIComponent(proxy.username)}:${decodeURIComponent(proxy.password)}`).toString('base64')
}

function proxyPort (proxy: URL): number {
  return Number(proxy.port === '' ? (proxy.protocol === 'https:' ? 443 : 80) : proxy.port)
}

/**
 * Opens a CONNECT tunnel to `authority` through `proxy`. Failing to reach the
 * proxy rejects with SP_UPSTREAM_PROXY_UNREACHABLE, a refusal of the CONNECT
 * with SP_UPSTREAM_PROXY: both name the proxy, not the target.
 */
export async function connectThroughProxy (proxy: URL, authority: string, timeoutMs: number): Promise<Socket> {
  const headers: Record<string, string> = { host: authority }
  const auth = proxyAuthorization(proxy)
  if (auth !== null) headers['proxy-authorization'] = auth
  const request = proxy.protocol === 'https:' ? https.request : http.request
  return await new Promise((resolve, reject) => {
    const req = request({ host: proxy.hostname.replace(/^\[|\]$/g, ''), port: proxyPort(proxy), method: 'CONNECT', path: authority, headers, agent: false })
    const timer = setTimeout(() => {
      const err = Object.assign(new Error(`no answer to CONNECT within ${timeoutMs} ms`), { code: 'UND_ERR_CONNECT_TIMEOUT' })
      req.destroy(err)
    }, timeoutMs)
    req.once('connect', (res, socket, head) => {
      clearTimeout(timer)
      if (res.statusCode !== 200) {
        socket.destroy()
        reject(new UpstreamError('SP_UPSTREAM_PROXY', 502, proxy.host, `upstream proxy ${proxy.host} answered ${res.statusCode ?? '?'} to CONNECT ${authority}`))
        return
      }
      if (head.length > 0) socket.unshift(head)
      resolve(socket)
    })
    req.once('response', (res) => {
      // A proxy that answers CONNECT with a plain response (no tunnel).
      clearTimeout(timer)
      res.resume()
      req.destroy()
      reject(new UpstreamError('SP_UPSTREAM_PROXY', 502, proxy.host, `upstream proxy ${proxy.host} answered ${res.statusCode ?? '?'} to CONNECT ${authority}`))
    })
    req.once('error', (err) => { clearTimeout(timer); reject(upstreamProxyError(proxy.host, err)) })
    req.end()
  })
}

/** Wraps a connector so that failing to reach the upstream proxy is reported as that hop failing. */
function proxyConnector (proxy: URL, base: Connector): Connector {
  return (opts, callback) => {
    base(opts, (err, socket) => {
      if (err !== null) callback(upstreamProxyError(proxy.host, err), null)
      else callback(null, socket!)
    })
  }
}

/** Methods a client may send again (RFC 9110 9.2.2). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE', 'PUT', 'DELETE'])
/** What undici reports when the other side closed or reset the connection. */
const CLOSED_CODES = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE'])
const kRequestsSent = Symbol('session-proxy: requests written on this socket')

function retryable (opts: Dispatcher.DispatchOptions): boolean {
  if (opts.upgrade !== undefined && opts.upgrade !== null) return false
  // GET first: the common case skips the Set's hashing.
  if (opts.method !== 'GET' && !IDEMPOTENT.has(opts.method)) return false
  const body = opts.body
  if (body === undefined || body === null) return true
  return body === undefined || body === null || (Buffer.isBuffer(body) && body.length === 0) || body === ''
}

function closedBeforeResponse (err: Error): boolean {
  const e = err as { code?: unknown, message?: unknown }
  // "bad response" and "bad upgrade" are undici refusing bytes that did arrive.
  return typeof e.code === 'string' && CLOSED_CODES.has(e.code) && e.message !== 'bad response' && e.message !== 'bad upgrade'
}

/**
 * undici does not tell a handler which socket its request went out on, nor
 * whether that socket carried requests before. Its `sendHeaders` channel
 * does, synchronously right after the handler's onConnect: the handler
 * announces itself in onConnect, the channel's listener tells it whether the
 * socket was reused (it counts requests per socket).
 */
let announcing: StaleConnectionRetry | null = null
let listening = false
function listenForReuse (): void {
  if (listening) return
  listening = true
  diagnostics.subscribe('undici:client:sendHeaders', (message) => {
    const handler = announcing
    announcing = null
    const socket = (message as { socket: Socket & { [kRequestsSent]?: number } }).socket
    const sent = socket[kRequestsSent] ?? 0
    socket[kRequestsSent] = sent + 1
    if (sent === 0 && kParser !== null) {
      socket.prependListener('end', onUpstreamEnd)
      if (!parserPatched) {
        const parser = (socket as unknown as Record<symbol, H1Parser | null | undefined>)[kParser]
        if (parser !== undefined && parser !== null) patchPausedFinish(parser)
      }
    }
    if (handler !== null) handler.reused = sent > 0
  })
}

/**
 * A reused keep-alive connection the upstream closed before answering (it
 * timed out its side just as the request went out, or closes every
 * connection after a number of requests without saying so) gets the request
 * once more, as curl and browsers do. Only for idempotent requests without a
 * body, only when the connection had carried earlier requests, and never
 * once a byte of the response arrived.
 */
class StaleConnectionRetry implements Dispatcher.DispatchHandler {
  reused = false
  private responded = false
  private retried = false
  private readonly dispatcher: Dispatcher
  private readonly opts: Dispatcher.DispatchOptions
  private readonly inner: Dispatcher.DispatchHandler
  private readonly log: Logger | undefined

  constructor (dispatcher: Dispatcher, opts: Dispatcher.DispatchOptions, inner: Dispatcher.DispatchHandler, log: Logger | undefined) {
    this.dispatcher = dispatcher
    this.opts = opts
    this.inner = inner
    this.log = log
  }

  onConnect (abort: (err?: Error) => void): void {
    this.reused = false
    announcing = this
    this.inner.onConnect?.(abort)
  }

  onResponseStarted (): void {
    this.responded = true
    this.inner.onResponseStarted?.()
  }

  onHeaders (statusCode: number, headers: Buffer[], resume: () => void, statusText: string): boolean {
    this.responded = true
    return this.inner.onHeaders!(statusCode, headers, resume, statusText)
  }

  onData (chunk: Buffer): boolean {
    return this.inner.onData!(chunk)
  }

  onComplete (trailers: string[] | null): void {
    this.inner.onComplete!(trailers)
  }

  onError (err: Error): void {
    if (!this.responded && !this.retried && this.reused && closedBeforeResponse(err)) {
      this.retried = true
      this.log?.debug({ origin: String(this.opts.origin), method: this.opts.method, error: (err as { code?: string }).code }, 'upstream closed a reused connection before answering: sending the request again')
      // After the current call: undici is still tidying up the closed connection.
      queueMicrotask(() => {
        try {
          this.dispatcher.dispatch(this.opts, this)
        } catch (e) {
          this.inner.onError!(e as Error)
        }
      })
      return
    }
    this.inner.onError!(err)
  }
}

/**
 * Plain http through an upstream proxy: a 407 is the proxy refusing our
 * credentials, not an answer from the target. Relayed as is, the client
 * would take it for this proxy asking it to authenticate.
 */
class UpstreamProxyAnswer implements Dispatcher.DispatchHandler {
  private readonly proxy: string
  private readonly inner: Dispatcher.DispatchHandler
  private abort: ((err?: Error) => void) | null = null
  private refused = false

  constructor (proxy: string, inner: Dispatcher.DispatchHandler) {
    this.proxy = proxy
    this.inner = inner
  }

  onConnect (abort: (err?: Error) => void): void {
    this.abort = abort
    this.inner.onConnect?.(abort)
  }

  onResponseStarted (): void {
    this.inner.onResponseStarted?.()
  }

  onHeaders (statusCode: number, headers: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode !== 407) return this.inner.onHeaders!(statusCode, headers, resume, statusText)
    this.refused = true
    const err = new UpstreamError('SP_UPSTREAM_PROXY', 502, this.proxy, `upstream proxy ${this.proxy} answered 407 (Proxy Authentication Required): check the credentials in upstream.proxy / --upstream-proxy`)
    this.inner.onError!(err)
    this.abort?.(err)
    return false
  }

  onData (chunk: Buffer): boolean {
    return this.refused ? true : this.inner.onData!(chunk)
  }

  onComplete (trailers: string[] | null): void {
    if (!this.refused) this.inner.onComplete!(trailers)
  }

  onError (err: Error): void {
    if (!this.refused) this.inner.onError!(err)
  }
}

/** A list of headers plus one more, in the form the caller gave them. */
function withHeader (headers: Dispatcher.DispatchOptions['headers'], name: string, value: string): Dispatcher.DispatchOptions['headers'] {
  if (headers === undefined || headers === null) return [name, value]
  if (Array.isArray(headers)) return [...headers as string[], name, value]
  // Every caller here passes a flat list; an object is the only other form they could.
  return { ...(headers as Record<string, string | string[] | undefined>), [name]: value }
}

export interface PoolOptions {
  upstream?: UpstreamConfig
  /** Where HTTPS_PROXY/HTTP_PROXY/NO_PROXY are read from when upstream.proxy is null. */
  env?: NodeJS.ProcessEnv
  log?: Logger
}

export class UpstreamPool {
  /** The default dispatcher: direct connections, default TLS verification. */
  readonly agent: Agent
  private readonly rules: ConnectToRule[]
  private readonly origins = new Map<string, string>()
  private readonly agentOptions: import('undici').Agent.Options
  private readonly tlsRules: TlsRule[]
  private readonly globalPolicy: TlsPolicy
  private readonly httpProxy: string | null
  private readonly httpsProxy: string | null
  private readonly noProxy: NoProxyEntry[] | 'all'
  /** True when every request can take `agent`: no proxy, no TLS rules. */
  private readonly simple: boolean
  private readonly direct: Route
  private readonly dispatchers = new Map<string, Route>()
  /** scheme://authority to its route, so rules are matched once per upstream. */
  private readonly routes = new Map<string, Route>()
  private readonly connectTimeoutMs: number
  private readonly warnedInsecure = new Set<string>()
  private readonly log: Logger | undefined

  constructor (pool: PoolConfig, connectTo: string[], opts: PoolOptions = {}) {
    const upstream = opts.upstream ?? EMPTY_UPSTREAM
    const env = opts.env ?? process.env
    this.log = opts.log
    this.rules = connectTo.map((spec, i) => parseConnectTo(spec, `connectTo[${i}] "${spec}"`))
    this.agentOptions = {
      connections: pool.connectionsPerOrigin,
      pipelining: 1,
      keepAliveTimeout: pool.idleTimeoutMs,
      keepAliveMaxTimeout: pool.maxIdleTimeoutMs,
      headersTimeout: pool.headersTimeoutMs,
      bodyTimeout: pool.bodyTimeoutMs,
      connect: { timeout: pool.connectTimeoutMs },
      // upstream.http2: undici offers h2 and http/1.1 by ALPN and speaks what
      // the upstream picks (plain http stays HTTP/1.1). Only set when on, so
      // the default agent is built exactly as before.
      ...(upstream.http2 ? { allowH2: true } : {})
    }
    this.agent = new Agent(this.agentOptions)
    this.direct = { dispatcher: this.agent, absolute: null }
    this.connectTimeoutMs = pool.connectTimeoutMs
    listenForReuse()

    // Passing `ca` replaces Node's root store, so an extra bundle is added to
    // the bundled roots and NODE_EXTRA_CA_CERTS explicitly.
    const baseRoots = (): string[] => {
      const roots = [...tls.rootCertificates]
      const extra = env.NODE_EXTRA_CA_CERTS
      if (extra !== undefined && extra !== '') {
        try { roots.push(readFileSync(extra, 'utf8')) } catch {}
      }
      return roots
    }
    const globalCa = upstream.ca === null ? null : readBundle(upstream.ca, 'upstream.ca')
    this.globalPolicy = globalCa === null ? DEFAULT_POLICY : { id: 'ca', ca: [...baseRoots(), globalCa], insecure: false, where: 'upstream.ca' }
    this.tlsRules = upstream.tls.map((rule, i) => {
      const where = `upstream.tls[${i}] (${rule.match})`
      const insecure = rule.insecure === true
      let ca = this.globalPolicy.ca
      if (rule.ca !== undefined && rule.ca !== null) ca = [...(ca ?? baseRoots()), readBundle(rule.ca, `upstream.tls[${i}].ca`)]
      if (insecure) opts.log?.warn({ rule: where }, 'upstream TLS verification is OFF for these hosts: anyone on the path can read and change that traffic. Use this for test servers only')
      return { pattern: compileHostPattern(rule.match), policy: { id: `tls${i}`, ca, insecure, where } }
    })

    if (upstream.proxy !== null) {
      this.httpProxy = this.httpsProxy = checkProxyUrl(upstream.proxy, 'upstream.proxy')
    } else {
      const httpsEnv = env.https_proxy ?? env.HTTPS_PROXY
      const httpEnv = env.http_proxy ?? env.HTTP_PROXY
      this.httpProxy = httpEnv !== undefined && httpEnv !== '' ? checkProxyUrl(httpEnv, 'HTTP_PROXY') : null
      this.httpsProxy = httpsEnv !== undefined && httpsEnv !== '' ? checkProxyUrl(httpsEnv, 'HTTPS_PROXY') : this.httpProxy
    }
    this.noProxy = parseNoProxy(upstream.noProxy ?? [env.no_proxy ?? env.NO_PROXY ?? ''])
    this.simple = this.httpProxy === null && this.httpsProxy === null && this.tlsRules.length === 0 && globalCa === null
    if (this.httpProxy !== null || this.httpsProxy !== null) {
      opts.log?.info({ http: redactProxy(this.httpProxy), https: redactProxy(this.httpsProxy), noProxy: this.noProxy === 'all' ? '*' : this.noProxy.map((e) => e.port === 0 ? e.host : `${e.host}:${e.port}`) }, 'upstream proxy')
    }
  }

  /** The origin undici connects to for a target, after --connect-to. */
  originFor (target: Target): string {
    const key = target.scheme === 'http' ? target.authority : 'https://' + target.authority
    let origin = this.origins.get(key)
    if (origin === undefined) {
      origin = this.resolve(target)
      if (this.origins.size > 10000) this.origins.clear()
      this.origins.set(key, origin)
    }
    return origin
  }

  /** Sends one request for `target`; `opts.origin` is filled in here, on `opts` itself (pass a fresh object). */
  dispatch (target: Target, opts: Omit<Dispatcher.DispatchOptions, 'origin'>, handler: Dispatcher.DispatchHandler): void {
    const route = this.simple ? this.direct : this.routeFor(target)
    const origin = this.originFor(target)
    // Every caller passes a fresh options object: origin is set on it rather
    // than on a copy (one object less per request).
    const sent = opts as Dispatcher.DispatchOptions
    sent.origin = origin
    if (route.absolute !== null) {
      sent.path = origin + sent.path
      if (route.absolute.authorization !== null) sent.headers = withHeader(opts.headers, 'proxy-authorization', route.absolute.authorization)
    }
    let h = route.absolute !== null ? new UpstreamProxyAnswer(route.absolute.proxy, handler) : handler
    if (retryable(sent)) h = new StaleConnectionRetry(route.dispatcher, sent, h, this.log)
    try {
      route.dispatcher.dispatch(sent, h)
    } catch (err) {
      // undici reports most refusals through onError; whatever it throws
      // (a dispatcher closed during shutdown, ...) takes the same way.
      handler.onError?.(err as Error)
    }
  }

  /** Where a host:port actually connects, for error messages and logs. */
  dialTarget (target: Target): string {
    return this.originFor(target).replace(/^https?:\/\//, '')
  }

  /** The upstream proxy a target goes through, or null for a direct connection. */
  proxyFor (scheme: 'http' | 'https', host: string, port: number): string | null {
    const proxy = scheme === 'https' ? this.httpsProxy : this.httpProxy
    if (proxy === null || this.noProxy === 'all') return null
    const bare = host.replace(/^\[|\]$/g, '')
    for (const e of this.noProxy) {
      if (e.port !== 0 && e.port !== port) continue
      if (bare === e.host || bare.endsWith('.' + e.host)) return null
    }
    return proxy
  }

  /**
   * A raw TCP connection to host:port for a plain CONNECT tunnel, after
   * --connect-to and through the upstream proxy (by CONNECT) when one applies.
   */
  async openTunnel (host: string, port: number, authority: string): Promise<Socket> {
    const target: Target = { scheme: 'https', host, port, authority, path: '/', cookieUrl: '' }
    const dial = new URL(this.originFor(target))
    const dialHost = dial.hostname.replace(/^\[|\]$/g, '')
    const dialPort = Number(dial.port === '' ? 443 : dial.port)
    const proxy = this.proxyFor('https', host, port)
    if (proxy === null) {
      const timeoutMs = this.connectTimeoutMs
      return await new Promise((resolve, reject) => {
        const s = net.connect({ host: dialHost, port: dialPort })
        // A black-holed host never answers the SYN: without a timer the tunnel
        // (and its client) would wait for the OS's own timeout, minutes later.
        const timer = setTimeout(() => {
          s.destroy(Object.assign(new Error(`no connection to ${authority} within ${timeoutMs} ms`), { code: 'UND_ERR_CONNECT_TIMEOUT' }))
        }, timeoutMs)
        s.once('connect', () => { clearTimeout(timer); s.off('error', reject); resolve(s) })
        s.once('error', (err) => { clearTimeout(timer); reject(err) })
      })
    }
    return await connectThroughProxy(new URL(proxy), dial.host, this.connectTimeoutMs)
  }

  async close (): Promise<void> {
    await Promise.all([this.agent.close(), ...[...this.dispatchers.values()].map(async (r) => await r.dispatcher.close())])
  }

  private routeFor (target: Target): Route {
    const key = target.scheme === 'http' ? target.authority : 'https://' + target.authority
    let r = this.routes.get(key)
    if (r === undefined) {
      r = this.choose(target)
      if (this.routes.size > 10000) this.routes.clear()
      this.routes.set(key, r)
    }
    return r
  }

  private choose (target: Target): Route {
    let policy = DEFAULT_POLICY
    if (target.scheme === 'https') {
      policy = this.globalPolicy
      for (const rule of this.tlsRules) {
        if (rule.pattern.matches(target.host, target.port)) { policy = rule.policy; break }
      }
      if (policy.insecure && !this.warnedInsecure.has(target.authority)) {
        this.warnedInsecure.add(target.authority)
        this.log?.warn({ host: target.authority, rule: policy.where }, 'upstream TLS certificate NOT verified for this host (insecure)')
      }
    }
    const proxy = this.proxyFor(target.scheme, target.host, target.port)
    if (proxy === null && policy === DEFAULT_POLICY) return this.direct
    // Plain http and https differ in how they use a proxy, so they never share a dispatcher.
    const id = `${proxy === null ? 'direct' : `${target.scheme} ${proxy}`} ${policy.id}`
    let r = this.dispatchers.get(id)
    if (r === undefined) {
      // One secure context per policy: given only `ca`, every new upstream
      // connection would build one, parsing the whole root bundle (~60 ms of
      // CPU each), which a client that opens and resets streams could make
      // the proxy do at will.
      const tlsOptions = { secureContext: policy.ca === undefined ? undefined : tls.createSecureContext({ ca: policy.ca }), rejectUnauthorized: !policy.insecure }
      r = proxy === null
        ? { dispatcher: new Agent({ ...this.agentOptions, connect: { ...this.agentOptions.connect, ...tlsOptions } }), absolute: null }
        : this.proxyRoute(new URL(proxy), target.scheme, tlsOptions)
      this.dispatchers.set(id, r)
    }
    return r
  }

  /**
   * Plain http goes to the proxy in absolute form, as curl does, so proxies
   * that allow CONNECT only to 443 still work; each target keeps its own pool
   * of connections to the proxy. https goes through a CONNECT tunnel per
   * connection, with TLS to the target inside it.
   */
  private proxyRoute (proxy: URL, scheme: 'http' | 'https', tlsOptions: { secureContext: tls.SecureContext | undefined, rejectUnauthorized: boolean }): Route {
    const timeout = this.connectTimeoutMs
    if (scheme === 'http') {
      const toProxy = proxyConnector(proxy, buildConnector({ timeout }))
      const proxyOrigin = proxy.origin
      const dispatcher = new Agent({
        ...this.agentOptions,
        factory: (_origin, options) => new Pool(proxyOrigin, { ...options, connect: toProxy })
      })
      return { dispatcher, absolute: { authorization: proxyAuthorization(proxy), proxy: proxy.host } }
    }
    // upstream.http2: the TLS inside the tunnel offers h2 as the direct connector does.
    const tlsToTarget = buildConnector({ timeout, ...tlsOptions, ...(this.agentOptions.allowH2 === true ? { allowH2: true } : {}) })
    const dispatcher = new Agent({
      ...this.agentOptions,
      connect: (opts, callback) => {
        const authority = `${opts.hostname}:${opts.port === '' ? 443 : opts.port}`
        connectThroughProxy(proxy, authority, timeout).then((socket) => {
          tlsToTarget({ ...opts, httpSocket: socket }, callback)
        }, (err: Error) => callback(err, null))
      }
    })
    return { dispatcher, absolute: null }
  }

  private resolve (target: Target): string {
    for (const rule of this.rules) {
      if ((rule.host === '' || rule.host === target.host) && (rule.port === null || rule.port === target.port)) {
        return `${target.scheme}://${rule.toHost === '' ? target.host : rule.toHost}:${rule.toPort ?? target.port}`
      }
    }
    return `${target.scheme}://${target.host}:${target.port}`
  }
}

function redactProxy (url: string | null): string | null {
  if (url === null) return null
  const u = new URL(url)
  if (u.password !== '') u.password = '***'
  return u.href
}
