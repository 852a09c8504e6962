/**
 * The admin API's one error shape: JSON `{ error, message }` with the code
 * also in the x-session-proxy-error header. Written by the gate (on the raw
 * response) and by Fastify's error handler. A failure the proxy did not
 * anticipate answers a generic SP_INTERNAL: its message and stack, which can
 * name files of the installation or the data dir, go to the log only.
 */
import type { ServerResponse } from 'node:http'
import { SessionProxyError } from '../errors.js'
import { ERROR_HEADER } from '../proxy/respond.js'

export const INTERNAL_MESSAGE = 'internal error in the admin API; the proxy log has the details'

export interface AdminErrorBody { error: string, message: string }

/** What a client is told about `err`; null for an unexpected error (log it, answer INTERNAL). */
export function describeAdminError (err: unknown): { status: number, body: AdminErrorBody } | null {
  if (err instanceof SessionProxyError) {
    // A 500 is the proxy's own failure (a ConfigError for a secret file that
    // went away names the file): the code only. 502/503/504 say which hop failed.
    if (err.statusCode === 500) return { status: 500, body: { error: err.code, message: INTERNAL_MESSAGE } }
    return { status: err.statusCode, body: { error: err.code, message: err.message } }
  }
  const e = err as { statusCode?: unknown, code?: unknown, message?: unknown, validation?: unknown } | null
  if (e === null || typeof e !== 'object') return null
  const status = typeof e.statusCode === 'number' ? e.statusCode : e.validation !== undefined ? 400 : 500
  if (status < 400 || status >= 500) return null
  // Fastify's own refusals (body parsing, bad URL): its messages name no files.
  const code = typeof e.code === 'string' ? e.code : ''
  const message = typeof e.message === 'string' ? e.message : 'bad request'
  switch (code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE': return { status: 413, body: { error: 'SP_ADMIN_BODY_TOO_LARGE', message: 'the request body is larger than limits.maxAdminBodyBytes' } }
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE': return { status: 415, body: { error: 'SP_ADMIN_MEDIA_TYPE', message: `${message}: send application/json` } }
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY': return { status: 400, body: { error: 'SP_ADMIN_BAD_JSON', message } }
  }
  if (message.includes('JSON') || err instanceof SyntaxError) return { status: 400, body: { error: 'SP_ADMIN_BAD_JSON', message } }
  return { status, body: { error: 'SP_BAD_REQUEST', message } }
}

/** Writes `err` on a raw response (the gate runs before Fastify). */
export function writeAdminError (res: ServerResponse, err: SessionProxyError): void {
  if (res.headersSent) {
    res.destroy()
    return
  }
  const body = JSON.stringify({ error: err.code, message: err.message })
  const headers: Record<string, string | number> = {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    [ERROR_HEADER]: err.code
  }
  if (err.statusCode === 401) headers['www-authenticate'] = 'Bearer realm="session-proxy admin"'
  res.writeHead(err.statusCode, headers)
  res.end(res.req.method === 'HEAD' ? undefined : body)
}
