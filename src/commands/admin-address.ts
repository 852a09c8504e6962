/**
 * Where the running proxy's admin API is, for the subcommands that talk to
 * it: found like the server finds its address (--host/--port, SESSION_PROXY_*
 * variables, the config file, the defaults).
 */
import { isIP } from 'node:net'
import { loadConfig, parsePort } from '../config/load.js'

/** A wildcard listen address is reached on loopback. */
export function adminHost (host: string): string {
  if (host === '0.0.0.0' || host === '') return '127.0.0.1'
  if (host === '::' || host === '[::]') return '[::1]'
  return isIP(host) === 6 ? `[${host}]` : host
}

/** Throws ConfigError on a bad config or port. */
export function adminBaseUrl (opts: { host?: string, port?: string, config?: string }): string {
  const { config } = loadConfig({
    configFile: opts.config,
    flags: { host: opts.host, port: opts.port === undefined ? undefined : parsePort(opts.port, '--port') }
  })
  return `http://${adminHost(config.host)}:${config.port}`
}

/** Calls the admin API; returns the parsed JSON or throws with the API's own message. */
export async function adminCall (base: string, method: string, path: string): Promise<unknown> {
  let response: Response
  try {
    response = await fetch(`${base}${path}`, { method, signal: AbortSignal.timeout(120_000) })
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
  return JSON.parse(text) as unknown
}
