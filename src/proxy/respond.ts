/** Error responses the proxy itself produces: short text that says what failed. */
import type { ServerResponse } from 'node:http'
import { SessionProxyError } from '../errors.js'

export const ERROR_HEADER = 'x-session-proxy-error'
/** Set on a response whose cookie changes could not be written to disk. */
export const PERSIST_FAILED_HEADER = 'x-session-proxy-persist'

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

export function asProxyError (err: unknown): SessionProxyError {
  if (err instanceof SessionProxyError) return err
  return new SessionProxyError('SP_INTERNAL', 500, `internal error: ${(err as Error)?.message ?? String(err)}`, { cause: err })
}
