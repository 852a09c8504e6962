/**
 * Cleartext HTTP/2 (h2c) stays refused, with 501 SP_H2C_UNSUPPORTED, in the
 * form the client can read:
 * - an HTTP/1.1 request with `Upgrade: h2c` gets an HTTP/1.1 501 (the raw
 *   error writer), instead of the generic "only websocket" refusal;
 * - a prior-knowledge preface (`PRI * HTTP/2.0`) on a plain port is an
 *   HTTP/2 client that cannot parse an HTTP/1.1 answer: it gets a minimal
 *   HTTP/2 answer instead, a 501 on its first stream carrying the same
 *   header and text, then GOAWAY. Node's HTTP/1.1 parser stops at the
 *   preface with HPE_PAUSED_H2_UPGRADE, which is where this is called from.
 * HTTP/2 itself is offered only by ALPN inside intercepted TLS tunnels
 * (h2-session.ts).
 */
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { SessionProxyError } from '../errors.js'
import { answerClientError } from '../net/connections.js'
import { ERROR_HEADER, sendRawError } from './respond.js'

export function h2cRefusal (): SessionProxyError {
  return new SessionProxyError('SP_H2C_UNSUPPORTED', 501, 'cleartext HTTP/2 (h2c) is not supported: use HTTP/1.1, or HTTP/2 over TLS through CONNECT (offered by ALPN in intercepted tunnels)')
}

/** Whether an upgrade request asks for h2c (alone or among other protocols). */
export function isH2cUpgrade (req: IncomingMessage): boolean {
  const upgrade = req.headers.upgrade
  return upgrade !== undefined && upgrade.split(',').some((t) => t.trim().toLowerCase() === 'h2c')
}

/** Whether a client error is Node's HTTP/1.1 parser meeting an HTTP/2 preface. */
export function isH2Preface (err: NodeJS.ErrnoException): boolean {
  return err.code === 'HPE_PAUSED_H2_UPGRADE'
}

const PREFACE_LENGTH = 24
const FRAME_DATA = 0x0
const FRAME_HEADERS = 0x1
const FRAME_SETTINGS = 0x4
const FRAME_GOAWAY = 0x7
const FLAG_END_STREAM = 0x1
const FLAG_END_HEADERS = 0x4
const NO_ERROR = 0x0
const HTTP_1_1_REQUIRED = 0xd

function frame (type: number, flags: number, stream: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9)
  head.writeUIntBE(payload.length, 0, 3)
  head[3] = type
  head[4] = flags
  head.writeUInt32BE(stream & 0x7fffffff, 5)
  return Buffer.concat([head, payload])
}

/** An HPACK integer with a 7-bit prefix (RFC 7541 5.1), as string lengths use. */
function hpackLength (n: number): Buffer {
  if (n < 127) return Buffer.from([n])
  const out = [127]
  n -= 127
  while (n >= 128) { out.push((n & 0x7f) | 0x80); n >>>= 7 }
  out.push(n)
  return Buffer.from(out)
}

/** Literal header fields without indexing, new name, no Huffman (RFC 7541 6.2.2): no table state. */
function hpackBlock (headers: Array<[string, string]>): Buffer {
  const parts: Buffer[] = []
  for (const [name, value] of headers) {
    const n = Buffer.from(name, 'latin1')
    const v = Buffer.from(value, 'latin1')
    parts.push(Buffer.from([0x00]), hpackLength(n.length), n, hpackLength(v.length), v)
  }
  return Buffer.concat(parts)
}

function goaway (lastStream: number, code: number, debug: string): Buffer {
  const payload = Buffer.alloc(8)
  payload.writeUInt32BE(lastStream & 0x7fffffff, 0)
  payload.writeUInt32BE(code, 4)
  return frame(FRAME_GOAWAY, 0, 0, Buffer.concat([payload, Buffer.from(debug, 'utf8')]))
}

/** Whether the bytes after the preface carry a HEADERS frame opening stream 1. */
function opensStreamOne (packet: Buffer): boolean {
  let at = PREFACE_LENGTH
  // A handful of frames at most arrive with the preface; stop at anything cut off.
  for (let i = 0; i < 16 && at + 9 <= packet.length; i++) {
    const length = packet.readUIntBE(at, 3)
    if (packet[at + 3] === FRAME_HEADERS && (packet.readUInt32BE(at + 5) & 0x7fffffff) === 1) return true
    at += 9 + length
  }
  return false
}

/**
 * The HTTP/2 bytes of the refusal: the server preface (empty SETTINGS),
 * then, when the client's first request came with its preface, a 501 on
 * that stream; then GOAWAY. Without a request, GOAWAY says
 * HTTP_1_1_REQUIRED and carries the message as debug data.
 */
export function h2RefusalFrames (err: SessionProxyError, packet: Buffer): Buffer {
  const body = `session-proxy: ${err.message}\n`
  const settings = frame(FRAME_SETTINGS, 0, 0, Buffer.alloc(0))
  if (!opensStreamOne(packet)) return Buffer.concat([settings, goaway(0, HTTP_1_1_REQUIRED, `${err.code}: ${err.message}`)])
  const headers = hpackBlock([
    [':status', String(err.statusCode)],
    ['content-type', 'text/plain; charset=utf-8'],
    ['content-length', String(Buffer.byteLength(body))],
    [ERROR_HEADER, err.code]
  ])
  return Buffer.concat([
    settings,
    frame(FRAME_HEADERS, FLAG_END_HEADERS, 1, headers),
    frame(FRAME_DATA, FLAG_END_STREAM, 1, Buffer.from(body, 'utf8')),
    goaway(1, NO_ERROR, '')
  ])
}

/** Sockets whose preface is being answered: Node's parser reports each later chunk again. */
const answering = new WeakSet<Duplex>()
/**
 * How long, and for how many bytes, a lone preface waits for the client's
 * first request. A client sends it right after its preface, so the wait
 * ends as soon as it arrives; the bound only matters for a client that
 * never sends one, and it is generous so that a loaded machine still lets
 * the client read the 501 (not only GOAWAY's debug text).
 */
const REQUEST_WAIT_MS = 1000
const REQUEST_WAIT_BYTES = 16384

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1')

/**
 * The server's 'clientError': an HTTP/2 preface that opens the connection is
 * answered in HTTP/2 (see above); everything else, a `PRI` after earlier
 * requests included, as before (answerClientError).
 */
export function answerClientErrorOrH2 (err: NodeJS.ErrnoException & { rawPacket?: unknown }, socket: Duplex): void {
  const packet = Buffer.isBuffer(err.rawPacket) ? err.rawPacket : null
  const current = (socket as Duplex & { _httpMessage?: unknown })._httpMessage
  if (!isH2Preface(err) || packet === null || packet.length < PREFACE.length || !packet.subarray(0, PREFACE.length).equals(PREFACE) || (current !== undefined && current !== null) || socket.destroyed || !socket.writable) {
    answerClientError(err, socket)
    return
  }
  if (answering.has(socket)) return
  answering.add(socket)
  const refusal = h2cRefusal()
  if (opensStreamOne(packet)) {
    sendRawError(socket, refusal, undefined, h2RefusalFrames(refusal, packet))
    return
  }
  // The preface came alone (the client's first request is often a write of
  // its own): wait briefly for it, so the client can read the 501 on it.
  let seen = packet
  const answer = (): void => {
    clearTimeout(timer)
    socket.off('data', onData)
    sendRawError(socket, refusal, undefined, h2RefusalFrames(refusal, seen))
  }
  const onData = (chunk: Buffer): void => {
    if (seen.length < REQUEST_WAIT_BYTES) seen = Buffer.concat([seen, chunk])
    if (opensStreamOne(seen) || seen.length >= REQUEST_WAIT_BYTES) answer()
  }
  const timer = setTimeout(answer, REQUEST_WAIT_MS)
  timer.unref()
  socket.on('data', onData)
  socket.once('close', () => clearTimeout(timer))
  socket.resume()
}
