/**
 * Client connections: who gets in (allowClients, maxClientConnections with
 * idle keep-alive connections shed first), what a request may cost while it
 * runs (a body that stalls is cut after clientBodyIdleTimeoutMs), and the
 * drain at shutdown (in-flight requests finish, tunnels and WebSockets are
 * closed).
 *
 * Admission runs before Node's HTTP parser sees the socket: the http.Server's
 * own 'connection' listener is called only for admitted sockets, so a refused
 * one never produces a request.
 */
import type http from 'node:http'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { Logger } from 'pino'
import { SessionProxyError } from '../errors.js'
import { sendProxyError, sendRawError } from '../proxy/respond.js'
import type { ClientAllowlist } from './allowlist.js'

export interface ClientLimits {
  maxClientConnections: number
  clientBodyIdleTimeoutMs: number
  clientHeadersTimeoutMs: number
  clientKeepAliveTimeoutMs: number
}

interface ConnectionState {
  /** Requests on this connection whose response has not closed yet. */
  active: number
  /** Requests seen so far: a connection with none is new, not idle. */
  served: number
  /** CONNECT or upgrade: never shed as idle. */
  upgraded: boolean
}

/** A refusal of a connection the proxy cannot afford lingers only briefly. */
const OVERLOAD_LINGER_MS = 250
/** Warnings about refused connections are summed up at most this often. */
const WARN_INTERVAL_MS = 5000

type ConnectionListener = (socket: Socket) => void

function ignore (): void {}

const kConnections = Symbol('session-proxy: counting connections')
const kState = Symbol('session-proxy: connection state')
type CountedResponse = ServerResponse & { [kConnections]?: ClientConnections | null, [kState]?: ConnectionState | undefined }

function onCountedClose (this: ServerResponse): void {
  const counted = this as CountedResponse
  const connections = counted[kConnections]
  if (connections === undefined || connections === null) return
  counted[kConnections] = null
  connections.finished(counted[kState])
}

/**
 * What `req.headers['content-length'] !== undefined ? it !== '0' :
 * req.headers['transfer-encoding'] !== undefined` says, read off rawHeaders
 * so that Node does not build the headers object (the first Content-Length
 * counts, as in req.headers).
 */
function hasBody (raw: readonly string[]): boolean {
  let chunked = false
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!
    if (name.length === 14 && name.toLowerCase() === 'content-length') return raw[i + 1] !== '0'
    if (name.length === 17 && name.toLowerCase() === 'transfer-encoding') chunked = true
  }
  return chunked
}

export class ClientConnections {
  private readonly open = new Map<Socket, ConnectionState>()
  /** Plain tunnels and joined WebSockets (both sides): closed at once on shutdown. */
  private readonly streams = new Set<Duplex>()
  private inflight = 0
  private draining = false
  private onIdle: (() => void) | null = null
  private refusedSinceWarn = 0
  private lastWarn = 0

  constructor (
    private readonly limits: ClientLimits,
    private readonly log: Logger,
    private readonly allowlist: ClientAllowlist | null
  ) {}

  /** Puts admission in front of the server's own connection handling. */
  install (server: http.Server): void {
    const listeners = server.listeners('connection') as ConnectionListener[]
    server.removeAllListeners('connection')
    server.on('connection', (socket: Socket) => {
      if (!this.admit(socket)) return
      for (const l of listeners) l.call(server, socket)
    })
  }

  get size (): number {
    return this.open.size
  }

  get isDraining (): boolean {
    return this.draining
  }

  private admit (socket: Socket): boolean {
    socket.on('error', ignore)
    if (this.draining) {
      socket.destroy()
      return false
    }
    if (this.allowlist !== null && !this.allowlist.allows(socket.remoteAddress ?? '')) {
      this.log.warn({ client: socket.remoteAddress }, 'connection refused: client not in allowClients')
      sendRawError(socket, new SessionProxyError('SP_CLIENT_NOT_ALLOWED', 403, `client ${socket.remoteAddress ?? '?'} is not allowed to use this proxy (see allowClients)`))
      return false
    }
    if (this.open.size >= this.limits.maxClientConnections && !this.shedIdle()) {
      this.refusedOverload()
      sendRawError(socket, new SessionProxyError('SP_OVERLOADED', 503, `too many open connections (limits.maxClientConnections = ${this.limits.maxClientConnections}); try again later`), OVERLOAD_LINGER_MS)
      return false
    }
    this.open.set(socket, { active: 0, served: 0, upgraded: false })
    socket.once('close', () => this.open.delete(socket))
    return true
  }

  /** Closes one idle keep-alive connection to make room; false if none is idle. */
  private shedIdle (): boolean {
    for (const [socket, state] of this.open) {
      if (state.active === 0 && state.served > 0 && !state.upgraded) {
        this.open.delete(socket)
        socket.destroy()
        return true
      }
    }
    return false
  }

  private refusedOverload (): void {
    this.refusedSinceWarn++
    const now = Date.now()
    if (now - this.lastWarn < WARN_INTERVAL_MS) return
    this.log.warn({ refused: this.refusedSinceWarn, open: this.open.size, limit: this.limits.maxClientConnections }, 'connections refused: limits.maxClientConnections reached')
    this.lastWarn = now
    this.refusedSinceWarn = 0
  }

  /** A CONNECT or upgrade took this socket over. */
  markUpgraded (socket: Duplex): void {
    const state = this.open.get(socket as Socket)
    if (state !== undefined) state.upgraded = true
  }

  /** A tunnel or WebSocket whose sides are closed at the start of a shutdown. */
  addStream (...sockets: Duplex[]): void {
    for (const s of sockets) {
      this.streams.add(s)
      s.once('close', () => this.streams.delete(s))
    }
  }

  /**
   * Counts a request until its response closes and, for requests with a
   * body, cuts a body that stalls. `respond`: answer 408 when no response
   * has started (proxied requests); otherwise the connection is cut.
   */
  begin (req: IncomingMessage, res: ServerResponse, respond: boolean): void {
    if (!respond && req.headers.accept?.includes('text/event-stream') === true) {
      // An admin event stream never finishes: shutdown closes it like a WebSocket instead of waiting.
      this.markUpgraded(req.socket)
      this.addStream(req.socket)
      return
    }
    const state = this.open.get(req.socket)
    if (state !== undefined) { state.active++; state.served++ }
    this.inflight++
    if (this.draining) res.shouldKeepAlive = false
    // One shared listener, its state on the response: no closure per request.
    const counted = res as CountedResponse
    counted[kConnections] = this
    counted[kState] = state
    res.on('close', onCountedClose)
    if (hasBody(req.rawHeaders)) this.watchBody(req, res, respond)
  }

  /** A counted request's response closed. */
  finished (state: ConnectionState | undefined): void {
    if (state !== undefined) state.active--
    this.inflight--
    if (this.inflight === 0 && this.onIdle !== null) this.onIdle()
  }

  /**
   * A body counts as stalled when the client sent no byte for
   * clientBodyIdleTimeoutMs while nothing it sent is waiting to be
   * consumed (a body the proxy itself holds back is not the client's fault).
   * Progress is read off the socket's byte counter: a 'data' listener on the
   * request would start it flowing before the upstream side consumes it.
   */
  private watchBody (req: IncomingMessage, res: ServerResponse, respond: boolean): void {
    const socket = req.socket
    let seen = socket.bytesRead
    const timer = setTimeout(() => {
      if (req.complete || res.writableEnded || req.destroyed) return
      const read = socket.bytesRead
      if (read !== seen || req.readableLength > 0) {
        seen = read
        timer.refresh()
        return
      }
      this.log.info({ method: req.method, url: req.url?.slice(0, 200), error: 'SP_CLIENT_TIMEOUT' }, 'request body stalled')
      if (respond && !res.headersSent) {
        res.shouldKeepAlive = false
        sendProxyError(res, new SessionProxyError('SP_CLIENT_TIMEOUT', 408, `the request body sent nothing for ${this.limits.clientBodyIdleTimeoutMs} ms (limits.clientBodyIdleTimeoutMs)`))
      } else {
        res.destroy()
      }
    }, this.limits.clientBodyIdleTimeoutMs)
    timer.unref()
    const stop = (): void => clearTimeout(timer)
    req.once('end', stop)
    res.once('close', stop)
  }

  /**
   * The inner server of intercepted tunnels never listens, so Node's
   * headersTimeout does not run there: this gives each inner connection the
   * same bound on an unfinished request head.
   */
  watchInner (server: http.Server): void {
    const idle = new WeakMap<Duplex, NodeJS.Timeout>()
    const arm = (socket: Duplex, ms: number): void => {
      const timer = setTimeout(() => {
        if (socket.destroyed) return
        sendRawError(socket, new SessionProxyError('SP_CLIENT_TIMEOUT', 408, `no complete request head within ${this.limits.clientHeadersTimeoutMs} ms (limits.clientHeadersTimeoutMs)`))
      }, ms)
      timer.unref()
      idle.set(socket, timer)
    }
    server.on('connection', (socket: Duplex) => {
      arm(socket, this.limits.clientHeadersTimeoutMs)
      socket.once('close', () => clearTimeout(idle.get(socket)))
    })
    // An upgraded connection is a WebSocket from now on: its head is complete.
    server.on('upgrade', (req: IncomingMessage) => clearTimeout(idle.get(req.socket)))
    server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      const socket = req.socket
      clearTimeout(idle.get(socket))
      res.once('finish', () => {
        // Keep-alive: Node closes the idle connection after keepAliveTimeout;
        // a next request head that starts and never ends is cut by this.
        if (!socket.destroyed) arm(socket, this.limits.clientKeepAliveTimeoutMs + this.limits.clientHeadersTimeoutMs)
      })
    })
  }

  /**
   * Shutdown: no new connections, tunnels and WebSockets closed, in-flight
   * requests given until the deadline; then every client connection is cut.
   */
  async drain (server: http.Server, timeoutMs: number): Promise<{ cut: number }> {
    this.draining = true
    for (const s of this.streams) s.destroy()
    server.closeIdleConnections()
    if (this.inflight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, timeoutMs)
        timer.unref()
        this.onIdle = () => { clearTimeout(timer); resolve() }
      })
    }
    this.onIdle = null
    const cut = this.inflight
    for (const socket of this.open.keys()) socket.destroy()
    server.closeAllConnections()
    return { cut }
  }
}

/**
 * The server's 'clientError' (a request that never became one): a parse
 * error gets a 400, an oversized head 431, a head that took too long 408,
 * each with its code; a reset or a TLS failure just closes.
 */
export function answerClientError (err: NodeJS.ErrnoException, socket: Duplex): void {
  socket.on('error', ignore)
  const code = err.code ?? ''
  // A response already under way on this connection cannot be followed by a raw one.
  const current = (socket as Duplex & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage
  if (socket.destroyed || !socket.writable || code === 'ECONNRESET' || code === 'EPIPE' || current?.headersSent === true) {
    socket.destroy()
    return
  }
  if (code === 'HPE_HEADER_OVERFLOW') {
    sendRawError(socket, new SessionProxyError('SP_HEADERS_TOO_LARGE', 431, 'the request head is larger than limits.maxHeaderBytes'))
  } else if (code === 'ERR_HTTP_REQUEST_TIMEOUT') {
    sendRawError(socket, new SessionProxyError('SP_CLIENT_TIMEOUT', 408, 'the request head was not complete in time (limits.clientHeadersTimeoutMs)'))
  } else if (code.startsWith('HPE_')) {
    const reason = (err as { reason?: unknown }).reason
    sendRawError(socket, new SessionProxyError('SP_CLIENT_PARSE', 400, `malformed request (${code}${typeof reason === 'string' ? `: ${reason}` : ''})`))
  } else {
    socket.destroy()
  }
}
