/**
 * Error responses the proxy itself produces: short text that says what
 * failed, with the code in `x-session-proxy-error`. The one writer for
 * refusals, whether a ServerResponse exists (sendProxyError) or only a raw
 * socket (sendRawError: CONNECT, upgrades, parse errors, connection-level
 * refusals).
 */
import { STATUS_CODES, type ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import { SessionProxyError } from '../errors.js'

export const ERROR_HEADER = 'x-session-proxy-error'
/** Set on a response whose cookie changes could not be written to disk. */
export const PERSIST_FAILED_HEADER = 'x-session-proxy-persist'

/**
 * After a raw refusal the socket gets this long to deliver it and see the
 * client close before it is destroyed: long enough to be read, short enough
 * that refusals cannot pile up descriptors.
 */
export const RAW_LINGER_MS = 2000

export function sendProxyError (res: ServerResponse, err: SessionProxyError): void {
  if (res.headersSent) {
    res.destroy(err)
    return
  }
  const body = `session-proxy: ${err.message}\n`
  const headers: Record<string, string | number> = {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    [ERROR_HEADER]: err.code
  }
  if (err.statusCode === 407) headers['proxy-authenticate'] = 'Basic realm="session-proxy"'
  res.writeHead(err.statusCode, headers)
  res.end(res.req.method === 'HEAD' ? undefined : body)
}

export function statusText (status: number): string {
  return STATUS_CODES[status] ?? 'Error'
}

function ignore (): void {}

/** The whole HTTP/1.1 response head and body for a refusal written to a raw socket. */
export function rawErrorResponse (err: SessionProxyError): string {
  const body = `session-proxy: ${err.message}\n`
  const extra = err.statusCode === 407 ? 'proxy-authenticate: Basic realm="session-proxy"\r\n' : ''
  return `HTTP/1.1 ${err.statusCode} ${statusText(err.statusCode)}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n${ERROR_HEADER}: ${err.code}\r\n${extra}connection: close\r\n\r\n${body}`
}

/**
 * Writes a complete refusal to a socket that carries no ServerResponse and
 * closes it. The error listener goes on first: a client that resets right
 * after its request must not become an uncaught exception. Whatever the
 * client still sends is read and dropped, so the kernel answers with FIN, not
 * RST, and the refusal can be read; the socket is destroyed once the client
 * closes or after RAW_LINGER_MS. `payload` replaces the HTTP/1.1 answer for
 * a client that speaks another framing (an HTTP/2 preface, h2-refuse.ts).
 */
export function sendRawError (socket: Duplex, err: SessionProxyError, lingerMs = RAW_LINGER_MS, payload: string | Buffer = rawErrorResponse(err)): void {
  socket.on('error', ignore)
  if (socket.destroyed) return
  if (!socket.writable) { socket.destroy(); return }
  const linger = setTimeout(() => socket.destroy(), lingerMs)
  linger.unref()
  socket.once('close', () => clearTimeout(linger))
  socket.on('data', ignore)
  socket.resume()
  socket.end(payload)
}

export function asProxyError (err: unknown): SessionProxyError {
  if (err instanceof SessionProxyError) return err
  return new SessionProxyError('SP_INTERNAL', 500, `internal error: ${(err as Error)?.message ?? String(err)}`, { cause: err })
}
