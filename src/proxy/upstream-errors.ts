/**
 * Maps what went wrong upstream to the response the client gets: 502 when
 * the upstream could not be reached or broke the exchange, 504 when it was
 * too slow. The code is stable (clients and tests match on it), the message
 * says what failed and for which host.
 */
import { UpstreamError } from '../errors.js'

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
  HPE_INVALID_CONSTANT: { code: 'SP_UPSTREAM_BAD_RESPONSE', status: 502, what: 'invalid HTTP response' },
  UND_ERR_INFO: { code: 'SP_UPSTREAM_BAD_RESPONSE', status: 502, what: 'invalid HTTP response' }
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

export function mapUpstreamError (err: unknown, host: string): UpstreamError {
  const code = errorCode(err)
  const message = err instanceof Error ? err.message : String(err)
  if (code !== undefined) {
    const m = BY_CODE[code]
    if (m !== undefined) return new UpstreamError(m.code, m.status, host, `upstream ${host}: ${m.what} (${code})`, { cause: err })
    if (TLS_CODES.test(code)) {
      // ERR_SSL_* and most ERR_TLS_* are handshake failures (a plain-HTTP
      // server on an https port, no common protocol), not certificate checks.
      const what = /^ERR_SSL_|^ERR_TLS_(?!CERT_)/.test(code) ? 'TLS handshake failed' : 'TLS certificate verification failed'
      return new UpstreamError('SP_UPSTREAM_TLS', 502, host, `upstream ${host}: ${what}: ${message} (${code})`, { cause: err })
    }
    if (code.startsWith('HPE_')) return new UpstreamError('SP_UPSTREAM_BAD_RESPONSE', 502, host, `upstream ${host}: invalid HTTP response (${code})`, { cause: err })
  }
  return new UpstreamError('SP_UPSTREAM_ERROR', 502, host, `upstream ${host}: ${message}${code !== undefined ? ` (${code})` : ''}`, { cause: err })
}
