/**
 * Where the running proxy's admin API is, for the subcommands that talk to
 * it: found like the server finds its address (--host/--port, SESSION_PROXY_*
 * variables, the config file, the defaults).
 */
import { isIP } from 'node:net'
import { loadConfig, parsePort } from '../config/load.js'
import { readSecret } from '../session/host-defaults.js'

/** Sent on every admin call: makes a POST non-simple (see src/admin/gate.ts). */
export const ADMIN_HEADER = 'x-session-proxy-admin'

/** Where the admin API is and the headers every call sends. */
export interface AdminTarget {
  base: string
  headers: Record<string, string>
}

/** A wildcard listen address is reached on loopback. */
export function adminHost (host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1'
  if (host === '::' || host === '[::]') return '[::1]'
  return isIP(host) === 6 ? `[${host}]` : host
}

/**
 * The admin API's address and headers: ADMIN_HEADER, and the bearer token
 * when admin.token is configured (the same config and SESSION_PROXY_*
 * variables the server reads). Throws ConfigError on a bad config, port or
 * an unreadable token.
 */
export function adminTarget (opts: { host?: string, port?: string, config?: string }, env: NodeJS.ProcessEnv = process.env): AdminTarget {
  const { config } = loadConfig({
    env,
    configFile: opts.config,
    flags: { host: opts.host, port: opts.port === undefined ? undefined : parsePort(opts.port, '--port') }
  })
  const headers: Record<string, string> = { [ADMIN_HEADER]: '1' }
  if (config.admin.token !== null) headers.authorization = `Bearer ${readSecret(config.admin.token, 'admin.token', env)}`
  return { base: `http://${adminHost(config.host)}:${config.port}`, headers }
}

/** Calls the admin API; returns the parsed JSON or throws with the API's own message. */
export async function adminCall (target: AdminTarget, method: string, path: string, body?: { json: unknown } | { text: string }): Promise<unknown> {
  const text = await adminCallText(target, method, path, body)
  return text === '' ? null : JSON.parse(text) as unknown
}

/** Calls the admin API; returns the body as text or throws with the API's own message. */
export async function adminCallText (target: AdminTarget, method: string, path: string, body?: { json: unknown } | { text: string }): Promise<string> {
  const { base } = target
  const headers: Record<string, string> = { ...target.headers }
  let payload: string | undefined
  if (body !== undefined && 'json' in body) {
    headers['content-type'] = 'application/json'
    payload = JSON.stringify(body.json)
  } else if (body !== undefined) {
    headers['content-type'] = 'text/plain; charset=utf-8'
    payload = body.text
  }
  let response: Response
  try {
    response = await fetch(`${base}${path}`, { method, headers, body: payload, signal: AbortSignal.timeout(120_000) })
  } catch (e) {
    const cause = (e as { cause?: { code?: string, message?: string } }).cause
    throw new Error(`cannot reach the proxy at ${base}: ${cause?.code ?? cause?.message ?? (e as Error).message}. Is it running? Give its address with --host/--port.`)
  }
  const text = await response.text()
  if (!response.ok) {
    let message = text.trim()
    try { message = (JSON.parse(text) as { message: string }).message } catch {}
    throw new Error(message)
  }
  return text
}
