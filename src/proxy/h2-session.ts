/**
 * HTTP/2 inside intercepted tunnels: a TLS socket whose client chose `h2`
 * by ALPN gets an HTTP/2 server session from an internal, never-listening
 * http2 server. Each stream becomes one request on the HTTP/1.1 path (the
 * adapter in h2-stream.ts), handed to the caller with the tunnel it came
 * through, so it takes the same profile, jar, host defaults, hooks,
 * observers and request ids as a request over HTTP/1.1.
 *
 * What a client sends cannot crash the process: the session and every
 * stream have error listeners from the moment they exist; Node's http2
 * (nghttp2) answers bad frames, floods and oversized header lists itself
 * (RST_STREAM or GOAWAY), within the bounds set here from `limits.*`.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import http2, { type Http2ServerRequest, type Http2Session, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2'
import type { TLSSocket } from 'node:tls'
import type { Logger } from 'pino'
import { asH1Request, asH1Response, H2Response } from './h2-stream.js'

export interface H2Limits {
  /** SETTINGS_MAX_CONCURRENT_STREAMS (limits.http2MaxConcurrentStreams). */
  maxConcurrentStreams: number
  /** SETTINGS_MAX_HEADER_LIST_SIZE, enforced per stream (limits.maxHeaderBytes, as for HTTP/1.1 heads). */
  maxHeaderBytes: number
  /** A session with no open stream for this long is closed (limits.clientKeepAliveTimeoutMs). */
  idleTimeoutMs: number
  /** A stream with response bytes the client opens no window for is reset after this (limits.http2StalledStreamTimeoutMs). */
  stalledStreamTimeoutMs: number
}

/**
 * As many header fields as Node's HTTP/1.1 server takes (its
 * maxHeadersCount default), so a head that passes there passes here; the
 * bytes are bounded by maxHeaderBytes.
 */
const MAX_HEADER_PAIRS = 2000
/**
 * After GOAWAY, a session whose client does not close is destroyed after
 * this; so is one whose reset stream has not closed by then (see onStream).
 */
const CLOSE_GRACE_MS = 2000

export type H2RequestHandler<T> = (req: IncomingMessage, res: ServerResponse, tunnel: T) => void

function ignore (): void {}

export class H2Sessions<T> {
  private readonly server: http2.Http2Server
  private readonly tunnels = new WeakMap<Http2Session, T>()
  private readonly open = new WeakMap<Http2Session, { streams: number, idle: NodeJS.Timeout | null }>()
  /** The tunnel of the socket being handed to the server (its 'session' event is synchronous). */
  private accepting: T | undefined

  constructor (private readonly limits: H2Limits, private readonly log: Logger, private readonly handle: H2RequestHandler<T>) {
    this.server = http2.createServer({
      settings: {
        maxConcurrentStreams: limits.maxConcurrentStreams,
        maxHeaderListSize: limits.maxHeaderBytes,
        // No extended CONNECT (RFC 8441): WebSockets inside an h2 tunnel are not offered.
        enableConnectProtocol: false
      },
      maxHeaderListPairs: MAX_HEADER_PAIRS,
      Http2ServerResponse: H2Response
    }, (req, res) => this.onRequest(req, res as H2Response))
    this.server.on('session', (session: ServerHttp2Session) => this.onSession(session))
    // Attached before the compat layer sees the stream's first event.
    this.server.prependListener('stream', (stream: ServerHttp2Stream) => this.onStream(stream))
    this.server.on('sessionError', (err: Error) => this.log.debug({ err: err.message }, 'HTTP/2 client session error'))
    this.server.on('error', (err: Error) => this.log.debug({ err: err.message }, 'HTTP/2 server error'))
  }

  /** Serves HTTP/2 on a TLS socket whose ALPN settled on h2. */
  accept (socket: TLSSocket, tunnel: T): void {
    // The TLS socket inherits allowHalfOpen from the CONNECT socket of the
    // proxy's http.Server (true there). Node's http2 session learns that
    // its client went away only from the socket's 'close' or 'error', and a
    // half-open socket stays open after the client's FIN: a session whose
    // client vanished kept its streams, and their upstream requests and
    // connections, for ever. Not half-open, as on Node's own http2 servers,
    // the FIN ends the socket, which closes the session and its streams.
    socket.allowHalfOpen = false
    this.accepting = tunnel
    try {
      this.server.emit('connection', socket)
    } finally {
      this.accepting = undefined
    }
  }

  private onSession (session: ServerHttp2Session): void {
    session.on('error', (err: NodeJS.ErrnoException) => this.log.debug({ err: err.code ?? err.message }, 'HTTP/2 client session error'))
    session.on('frameError', ignore)
    const tunnel = this.accepting
    if (tunnel === undefined) {
      session.destroy()
      return
    }
    this.tunnels.set(session, tunnel)
    this.open.set(session, { streams: 0, idle: null })
    session.once('close', () => { const state = this.open.get(session); if (state?.idle != null) clearTimeout(state.idle) })
    this.armIdle(session)
  }

  /**
   * Idle as an HTTP/1.1 keep-alive connection is: counted from the moment
   * no stream is open, and cleared when one opens. (Node's session timeout
   * counts socket activity instead, and stays quiet after firing once while
   * a stream was open.)
   */
  private armIdle (session: Http2Session): void {
    const state = this.open.get(session)
    if (state === undefined || session.closed || session.destroyed) return
    if (state.idle !== null) clearTimeout(state.idle)
    state.idle = setTimeout(() => {
      state.idle = null
      if (state.streams === 0 && !session.closed && !session.destroyed) this.close(session)
    }, this.limits.idleTimeoutMs)
    state.idle.unref()
  }

  private close (session: Http2Session): void {
    session.close()
    const timer = setTimeout(() => { if (!session.destroyed) session.destroy() }, CLOSE_GRACE_MS)
    timer.unref()
    session.once('close', () => clearTimeout(timer))
  }

  private onStream (stream: ServerHttp2Stream): void {
    stream.on('error', (err: NodeJS.ErrnoException) => this.log.debug({ err: err.code ?? err.message }, 'HTTP/2 client stream error'))
    // A client that opens no flow-control window (or keeps the connection
    // window at 0) holds the response: the adapter's writes return false and
    // the upstream is paused, so memory stays bounded, but the stream, its
    // upstream request and connection would be held for ever. The stream's
    // own timer counts frames read and written; it fires on a quiet stream
    // too, which is left alone unless bytes are waiting for a window.
    stream.setTimeout(this.limits.stalledStreamTimeoutMs, () => {
      if (stream.closed || stream.destroyed || (stream.writableLength === 0 && !stream.writableNeedDrain)) return
      this.log.info({ error: 'stalled', waitingBytes: stream.writableLength, timeoutMs: this.limits.stalledStreamTimeoutMs }, 'HTTP/2 client takes no response bytes: stream reset (limits.http2StalledStreamTimeoutMs)')
      stream.close(http2.constants.NGHTTP2_CANCEL)
      // The stream closes once its RST_STREAM is written. On a dead transport
      // it never is: Node's http2 stops reading while a write is pending, and
      // a write that failed on the TLS socket (the client's RST) is not
      // reported to the session, so neither the reset nor the client's
      // going away ever closes the session. Destroying it closes every
      // stream, which aborts their upstream requests.
      const grace = setTimeout(() => { if (!stream.destroyed) stream.session?.destroy() }, CLOSE_GRACE_MS)
      grace.unref()
      stream.once('close', () => clearTimeout(grace))
    })
    const session = stream.session
    if (session === undefined) return
    const state = this.open.get(session)
    if (state === undefined) return
    state.streams++
    if (state.idle !== null) { clearTimeout(state.idle); state.idle = null }
    stream.once('close', () => {
      state.streams--
      if (state.streams === 0) this.armIdle(session)
    })
  }

  private onRequest (req: Http2ServerRequest, res: H2Response): void {
    const session = req.stream.session
    const tunnel = session === undefined ? undefined : this.tunnels.get(session)
    if (tunnel === undefined) {
      req.stream.close(http2.constants.NGHTTP2_REFUSED_STREAM)
      return
    }
    // A response that is complete while the client still sends its body (a
    // refusal, a 408 for a stalled body, an upstream that answered early):
    // RST_STREAM(NO_ERROR) tells the client to stop (RFC 9113 8.1), sent
    // once the response is flushed. Without it the half-open stream would
    // keep the session from ever being idle. (The stream's 'finish': the
    // compat response emits its own only when the stream closes.)
    const stream = req.stream
    stream.once('finish', () => {
      // remoteClose: the client's END_STREAM arrived (a GET's, with its headers).
      if (!stream.closed && stream.state.remoteClose !== 1) stream.close(http2.constants.NGHTTP2_NO_ERROR)
    })
    this.handle(asH1Request(req), asH1Response(res), tunnel)
  }
}
