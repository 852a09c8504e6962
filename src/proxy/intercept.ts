/**
 * CONNECT interception: after `200 Connection Established` the client's
 * socket is wrapped in a server-side TLSSocket that presents a certificate
 * minted for the requested host, and the decrypted HTTP/1.1 requests go to an
 * internal, never-listening http.Server whose handler calls forwardRequest
 * exactly as for plain proxied requests, with an https:// target built from
 * the CONNECT host:port (so Secure cookies are sent, and only here).
 *
 * A client that speaks plain HTTP inside the tunnel (the first byte is not a
 * TLS handshake record) is served the same way with an http:// target.
 *
 * ALPN offers h2 and http/1.1. A client that picks h2 gets an HTTP/2
 * session (h2-session.ts); each of its streams takes the same way as an
 * HTTP/1.1 request here (onRequest), with the same tunnel.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import tls from 'node:tls'
import type { Logger } from 'pino'
import { BadRequestError } from '../errors.js'
import type { ForwardOptions } from '../contracts/exchange.js'
import type { ProxyDeps } from '../contracts/proxy-deps.js'
import { forwardRequest } from './forward.js'
import { asProxyError, sendProxyError, sendRawError } from './respond.js'
import { parseTarget, type Target } from './target.js'
import type { LeafMinter } from './tls/mint.js'
import { forwardUpgrade, type UpgradeLimits } from './websocket.js'
import { H2Sessions } from './h2-session.js'
import { answerClientErrorOrH2, h2cRefusal, isH2cUpgrade } from './h2-refuse.js'
import type { ClientConnections } from '../net/connections.js'

export interface TunnelInfo {
  /** Lower-cased host without IPv6 brackets, as CONNECT named it. */
  host: string
  port: number
  /** host[:port] for Host and cookie URLs (port omitted when it is the scheme's default). */
  authority: string
  /** The profile the CONNECT request named (Proxy-Authorization or X-Session-Profile), if any. */
  profile: string | undefined
}

interface Tunnel {
  scheme: 'http' | 'https'
  authority: string
  host: string
  port: number
  options: ForwardOptions | undefined
}

function ignore (): void {}

/** What the inner server enforces, as for the proxy's own listener (limits.*). */
export interface InterceptLimits {
  maxHeaderBytes: number
  clientHeadersTimeoutMs: number
  clientKeepAliveTimeoutMs: number
  upgrade: UpgradeLimits
  /** Offer h2 by ALPN (connect.http2); false: http/1.1 only. */
  http2: boolean
  /** Streams one HTTP/2 client connection may have open (limits.http2MaxConcurrentStreams). */
  http2MaxConcurrentStreams: number
  /** limits.http2StalledStreamTimeoutMs */
  http2StalledStreamTimeoutMs: number
}

const H2_ALPN = ['h2', 'http/1.1']
const H1_ALPN = ['http/1.1']

/** First byte of a TLS record carrying a handshake (the ClientHello). */
const TLS_HANDSHAKE = 0x16

export class Interceptor {
  private readonly deps: ProxyDeps
  private readonly minter: LeafMinter
  private readonly log: Logger
  private readonly server: http.Server
  private readonly tunnels = new WeakMap<object, Tunnel>()
  private readonly h2: H2Sessions<Tunnel>

  private readonly limits: InterceptLimits
  private readonly connections: ClientConnections

  constructor (deps: ProxyDeps, minter: LeafMinter, log: Logger, limits: InterceptLimits, connections: ClientConnections) {
    this.deps = deps
    this.minter = minter
    this.log = log
    this.limits = limits
    this.connections = connections
    this.server = http.createServer({
      maxHeaderSize: limits.maxHeaderBytes,
      keepAliveTimeout: limits.clientKeepAliveTimeoutMs,
      requestTimeout: 0,
      headersTimeout: limits.clientHeadersTimeoutMs
    }, (req, res) => this.onRequest(req, res))
    connections.watchInner(this.server)
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.onUpgrade(req, socket, head))
    // TLS failures are logged where they happen; HTTP parse errors, oversized
    // and unfinished heads (and an HTTP/2 preface in a plain tunnel) are
    // answered as on the proxy's own listener.
    this.server.on('clientError', answerClientErrorOrH2)
    this.h2 = new H2Sessions<Tunnel>({
      maxConcurrentStreams: limits.http2MaxConcurrentStreams,
      maxHeaderBytes: limits.maxHeaderBytes,
      idleTimeoutMs: limits.clientKeepAliveTimeoutMs,
      stalledStreamTimeoutMs: limits.http2StalledStreamTimeoutMs
    }, log, (req, res, tunnel) => this.onStreamRequest(req, res, tunnel))
  }

  /** Takes over a CONNECT socket that has just been answered with 200. */
  accept (client: Socket, head: Buffer, info: TunnelInfo): void {
    // Node drops its error listener from CONNECT sockets; a reset must not crash the process.
    client.on('error', ignore)
    if (head.length > 0) client.unshift(head)
    // Until the first byte the http.Server's timeouts do not cover this socket.
    client.setTimeout(this.limits.clientHeadersTimeoutMs, () => client.destroy())
    client.once('data', (first: Buffer) => {
      client.setTimeout(0)
      client.pause()
      client.unshift(first)
      if (first[0] === TLS_HANDSHAKE) this.startTls(client, info)
      else this.startPlain(client, info)
    })
  }

  private startTls (client: Socket, info: TunnelInfo): void {
    let secureContext: tls.SecureContext
    try {
      secureContext = this.minter.contextFor(info.host)
    } catch (err) {
      this.log.info({ method: 'CONNECT', host: info.authority, error: (err as Error).message }, 'cannot intercept')
      client.destroy()
      return
    }
    const socket = new tls.TLSSocket(client, {
      isServer: true,
      secureContext,
      SNICallback: this.minter.sniCallback,
      // h2 first, as servers do: clients that offer it get HTTP/2 (h2-session.ts).
      ALPNProtocols: this.limits.http2 ? H2_ALPN : H1_ALPN
    })
    let secure = false
    let reported = false
    // Which server takes the socket depends on ALPN, so it is handed over
    // once the handshake is done; until then this bounds the handshake as
    // the inner server's head timeout did.
    const handshake = setTimeout(() => socket.destroy(), this.limits.clientHeadersTimeoutMs)
    handshake.unref()
    socket.once('close', () => clearTimeout(handshake))
    socket.once('secure', () => {
      secure = true
      clearTimeout(handshake)
      const tunnel = this.tunnel('https', info)
      if (socket.alpnProtocol === 'h2') {
        // Only tls.Server clears this on its server-side sockets (at
        // 'secureConnection'); an http2 session on a socket still marked as
        // connecting waits for a 'secureConnect' that never comes.
        (socket as tls.TLSSocket & { secureConnecting: boolean }).secureConnecting = false
        this.h2.accept(socket, tunnel)
        return
      }
      this.tunnels.set(socket, tunnel)
      this.server.emit('connection', socket)
    })
    // `on`, not `once`: a second error on a socket without a listener would crash the process.
    socket.on('error', (err: NodeJS.ErrnoException) => {
      client.destroy()
      if (!secure && !reported) {
        reported = true
        // Almost always a client that does not trust the proxy's CA.
        this.log.info({ method: 'CONNECT', host: info.authority, error: err.code ?? err.message, hint: 'does the client trust the session-proxy CA? (GET /_session/ca.pem)' }, 'TLS handshake with the client failed')
      }
    })
  }

  private startPlain (client: Socket, info: TunnelInfo): void {
    this.tunnels.set(client, this.tunnel('http', info))
    this.server.emit('connection', client)
    client.resume()
  }

  private tunnel (scheme: 'http' | 'https', info: TunnelInfo): Tunnel {
    const bracketed = info.host.includes(':') ? `[${info.host}]` : info.host
    const defaultPort = scheme === 'https' ? 443 : 80
    return {
      scheme,
      host: bracketed,
      port: info.port,
      authority: info.port === defaultPort ? bracketed : `${bracketed}:${info.port}`,
      options: info.profile === undefined ? undefined : { profile: info.profile }
    }
  }

  private targetFor (req: IncomingMessage): { target: Target, tunnel: Tunnel } {
    const tunnel = this.tunnels.get(req.socket)
    if (tunnel === undefined) throw new BadRequestError('SP_BAD_TARGET', 'request on an unknown tunnel')
    return this.targetIn(tunnel, req.url ?? '')
  }

  private targetIn (tunnel: Tunnel, url: string): { target: Target, tunnel: Tunnel } {
    if (url.charCodeAt(0) !== 47 /* '/' */) {
      // Absolute form inside a tunnel is legal but must name the tunnel's origin.
      const t = parseTarget(url)
      if (t.host !== tunnel.host || t.port !== tunnel.port) throw new BadRequestError('SP_BAD_TARGET', `request for ${t.authority} inside a tunnel to ${tunnel.authority}`)
      return { target: { ...t, scheme: tunnel.scheme }, tunnel }
    }
    const q = url.indexOf('?')
    const target: Target = {
      scheme: tunnel.scheme,
      host: tunnel.host,
      port: tunnel.port,
      authority: tunnel.authority,
      path: url,
      cookieUrl: `${tunnel.scheme}://${tunnel.authority}${q === -1 ? url : url.slice(0, q)}`
    }
    return { target, tunnel }
  }

  private onRequest (req: IncomingMessage, res: ServerResponse): void {
    let found
    try {
      found = this.targetFor(req)
    } catch (err) {
      sendProxyError(res, asProxyError(err))
      return
    }
    this.connections.begin(req, res, true)
    forwardRequest(this.deps, req, res, found.target, found.tunnel.options)
  }

  /**
   * One HTTP/2 stream: `:path` is origin-form and `:authority` (the Host
   * the adapter gives) must name the tunnel's origin, as an absolute-form
   * target inside an HTTP/1.1 tunnel must.
   */
  private onStreamRequest (req: IncomingMessage, res: ServerResponse, tunnel: Tunnel): void {
    let found
    try {
      if (req.method === 'CONNECT') throw new BadRequestError('SP_BAD_TARGET', `CONNECT inside an HTTP/2 tunnel to ${tunnel.authority} is not supported`)
      const url = req.url ?? ''
      if (url.charCodeAt(0) !== 47 /* '/' */) throw new BadRequestError('SP_BAD_TARGET', `HTTP/2 request path ${JSON.stringify(url.slice(0, 100))} is not origin-form`)
      const host = req.rawHeaders[0]?.toLowerCase() === 'host' ? req.rawHeaders[1] : req.headers.host
      if (host !== undefined && host !== tunnel.authority) {
        const t = parseTarget(`${tunnel.scheme}://${host}/`)
        if (t.host !== tunnel.host || t.port !== tunnel.port) throw new BadRequestError('SP_BAD_TARGET', `request for ${t.authority} inside a tunnel to ${tunnel.authority}`)
      }
      found = this.targetIn(tunnel, url)
    } catch (err) {
      sendProxyError(res, asProxyError(err))
      return
    }
    found.target.clientHttpVersion = '2.0'
    this.connections.begin(req, res, true)
    forwardRequest(this.deps, req, res, found.target, found.tunnel.options)
  }

  private onUpgrade (req: IncomingMessage, socket: Duplex, head: Buffer): void {
    if (isH2cUpgrade(req)) {
      sendRawError(socket, h2cRefusal())
      return
    }
    let found
    try {
      found = this.targetFor(req)
    } catch (err) {
      sendRawError(socket, asProxyError(err))
      return
    }
    forwardUpgrade(this.deps, req, socket, head, found.target, found.tunnel.options, this.limits.upgrade)
  }
}
