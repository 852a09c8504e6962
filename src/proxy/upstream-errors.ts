/**
 * Maps what went wrong upstream to the response the client gets: 502 when
 * the upstream could not be reached or broke the exchange, 504 when it was
 * too slow, 400 when undici refused the request itself (a header it cannot
 * send). The code is stable (clients and tests match on it), the message
 * says what failed and for which hop: errors raised while reaching the
 * upstream proxy are typed where they happen (upstream.ts) and kept as they
 * are here.
 */
import { SessionProxyError, UpstreamError } from '../errors.js'

interface Mapping {
  code: string
  status: 502 | 504
  what: string
}

const BY_CODE: Record<string, Mapping> = {
  ENOTFOUND: { code: 'SP_UPSTREAM_DNS', status: 502, what: 'DNS lookup failed' },
  EAI_AGAIN: { code: 'SP_UPSTREAM_DNS', status: 502, what: 'DNS lookup failed (temporary)' },
  EAI_NODATA: { code: 'SP_UPSTREAM_DNS', status: 502, what: 'DNS lookup found no address' },
  ECONNREFUSED: { code: 'SP_UPSTREAM_REFUSED', status: 502, what: 'connection refused' },
  ECONNRESET: { code: 'SP_UPSTREAM_RESET', status: 502, what: 'connection reset by the upstream' },
  EPIPE: { code: 'SP_UPSTREAM_RESET', status: 502, what: 'connection closed by the upstream while sending' },
  UND_ERR_SOCKET: { code: 'SP_UPSTREAM_RESET', status: 502, what: 'connection closed by the upstream' },
  UND_ERR_CLOSED: { code: 'SP_UPSTREAM_RESET', status: 502, what: 'connection closed' },
  EHOSTUNREACH: { code: 'SP_UPSTREAM_UNREACHABLE', status: 502, what: 'host unreachable' },
  ENETUNREACH: { code: 'SP_UPSTREAM_UNREACHABLE', status: 502, what: 'network unreachable' },
  UND_ERR_CONNECT_TIMEOUT: { code: 'SP_UPSTREAM_CONNECT_TIMEOUT', status: 504, what: 'timed out connecting' },
  ETIMEDOUT: { code: 'SP_UPSTREAM_CONNECT_TIMEOUT', status: 504, what: 'timed out connecting' },
  UND_ERR_HEADERS_TIMEOUT: { code: 'SP_UPSTREAM_HEADERS_TIMEOUT', status: 504, what: 'timed out waiting for the response headers' },
  UND_ERR_BODY_TIMEOUT: { code: 'SP_UPSTREAM_BODY_TIMEOUT', status: 504, what: 'timed out waiting for the response body' },
  UND_ERR_HEADERS_OVERFLOW: { code: 'SP_UPSTREAM_BAD_RESPONSE', status: 502, what: 'response headers too large' },
  UND_ERR_RES_CONTENT_LENGTH_MISMATCH: { code: 'SP_UPSTREAM_BAD_RESPONSE', status: 502, what: 'response body does not match its Content-Length' },
  UND_ERR_RES_EXCEEDED_MAX_SIZE: { code: 'SP_UPSTREAM_BAD_RESPONSE', status: 502, what: 'response body too large' },
  HPE_INVALID_CONSTANT: { code: 'SP_UPSTREAM_BAD_RESPONSE', status: 502, what: 'invalid HTTP response' },
  UND_ERR_INFO: { code: 'SP_UPSTREAM_BAD_RESPONSE', status: 502, what: 'invalid HTTP response' },
  // Node's ServerResponse refusing to write what the upstream sent.
  ERR_INVALID_CHAR: { code: 'SP_UPSTREAM_BAD_RESPONSE', status: 502, what: 'response head cannot be relayed (a character not allowed in a header)' },
  ERR_INVALID_HTTP_TOKEN: { code: 'SP_UPSTREAM_BAD_RESPONSE', status: 502, what: 'response head cannot be relayed (an invalid header name)' },
  ERR_HTTP_INVALID_HEADER_VALUE: { code: 'SP_UPSTREAM_BAD_RESPONSE', status: 502, what: 'response head cannot be relayed (an invalid header value)' },
  ERR_HTTP_INVALID_STATUS_CODE: { code: 'SP_UPSTREAM_BAD_RESPONSE', status: 502, what: 'response head cannot be relayed (an invalid status code)' }
}

const TLS_CODES = /^(CERT_|UNABLE_TO_|DEPTH_ZERO|SELF_SIGNED|ERR_TLS_|ERR_SSL_|HOSTNAME_MISMATCH)/

function errorCode (err: unknown): string | undefined {
  let e: unknown = err
  for (let depth = 0; depth < 4 && e !== null && typeof e === 'object'; depth++) {
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string' && code !== 'UND_ERR' && code !== 'UND_ERR_ABORTED') return code
    e = (e as { cause?: unknown }).cause
  }
  return undefined
}

/** The first SessionProxyError in the cause chain (a typed upstream-proxy failure). */
function typedCause (err: unknown): SessionProxyError | null {
  let e: unknown = err
  for (let depth = 0; depth < 4 && e !== null && typeof e === 'object'; depth++) {
    if (e instanceof SessionProxyError) return e
    e = (e as { cause?: unknown }).cause
  }
  return null
}

/**
 * undici's parser errors (HTTPParserError) carry no code: llhttp's error
 * number is looked up in the wrong direction, so they are known by name.
 * A SocketError "bad response" / "bad upgrade" is undici refusing what the
 * upstream sent (a response nobody asked for, a 100 or 101 out of place).
 */
function isMalformedResponse (err: unknown): boolean {
  if (err === null || typeof err !== 'object') return false
  const e = err as { name?: unknown, code?: unknown, message?: unknown }
  if (e.name === 'HTTPParserError') return true
  // undici's parser asserts on some status lines llhttp lets through (a status below 100).
  if (e.code === 'ERR_ASSERTION') return true
  return e.code === 'UND_ERR_SOCKET' && (e.message === 'bad response' || e.message === 'bad upgrade')
}

export function mapUpstreamError (err: unknown, host: string): SessionProxyError {
  const typed = typedCause(err)
  if (typed !== null) return typed
  const code = errorCode(err)
  const message = err instanceof Error ? err.message : String(err)
  if (isMalformedResponse(err)) {
    return new UpstreamError('SP_UPSTREAM_BAD_RESPONSE', 502, host, `upstream ${host}: invalid HTTP response: ${message}${code !== undefined ? ` (${code})` : ''}`, { cause: err })
  }
  if (code === 'UND_ERR_INVALID_ARG' || code === 'UND_ERR_NOT_SUPPORTED') {
    // undici validates the request before it sends anything: a header it
    // cannot send (expect, upgrade, a second host, an invalid value, ...).
    return new SessionProxyError('SP_REQUEST_NOT_FORWARDABLE', 400, `the request cannot be forwarded to ${host}: ${message}`, { cause: err })
  }
  if (code !== undefined) {
    const m = BY_CODE[code]
    if (m !== undefined) return new UpstreamError(m.code, m.status, host, `upstream ${host}: ${m.what} (${code})`, { cause: err })
    if (TLS_CODES.test(code)) {
      // ERR_SSL_* and most ERR_TLS_* are handshake failures (a plain-HTTP
      // server on an https port, no common protocol), not certificate checks.
      const what = /^ERR_SSL_|^ERR_TLS_(?!CERT_)/.test(code) ? 'TLS handshake failed' : 'TLS certificate verification failed'
      // An HTTP/2-only upstream refuses an HTTP/1.1-only ALPN offer this way.
      const hint = code === 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL' ? '; the upstream takes none of the offered protocols (an HTTP/2-only server? see upstream.http2)' : ''
      return new UpstreamError('SP_UPSTREAM_TLS', 502, host, `upstream ${host}: ${what}: ${message} (${code})${hint}`, { cause: err })
    }
    if (code.startsWith('HPE_')) return new UpstreamError('SP_UPSTREAM_BAD_RESPONSE', 502, host, `upstream ${host}: invalid HTTP response (${code})`, { cause: err })
  }
  return new UpstreamError('SP_UPSTREAM_ERROR', 502, host, `upstream ${host}: ${message}${code !== undefined ? ` (${code})` : ''}`, { cause: err })
}

/**
 * A failure to reach the upstream proxy itself (`proxy` is its host:port):
 * reported as that hop failing, whatever the target was.
 */
export function upstreamProxyError (proxy: string, err: unknown): SessionProxyError {
  const typed = typedCause(err)
  if (typed !== null) return typed
  const code = errorCode(err)
  const what = code !== undefined && BY_CODE[code] !== undefined ? BY_CODE[code].what : (err instanceof Error ? err.message : String(err))
  return new UpstreamError('SP_UPSTREAM_PROXY_UNREACHABLE', 502, proxy, `upstream proxy ${proxy} could not be reached: ${what}${code !== undefined ? ` (${code})` : ''}`, { cause: err })
}
