/**
 * CONNECT: checks the target, the proxy credentials and the port allowlist,
 * then either intercepts the tunnel (TLS terminated with a minted
 * certificate, see intercept.ts) or, for excluded hosts or with interception
 * off, opens a plain TCP tunnel whose bytes the proxy never inspects.
 */
import type { IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import type { Logger } from 'pino'
import { SessionProxyError } from '../errors.js'
import { matchesAny, type HostPattern } from '../net/host-pattern.js'
import { assertProfileName } from '../session/profiles.js'
import { parseProxyAuthorization, resolveProfileName } from '../session/resolve-profile.js'
import type { Interceptor } from './intercept.js'
import { asProxyError } from './respond.js'
import type { UpstreamPool } from './upstream.js'

export interface TunnelDeps {
  log: Logger
  users: ReadonlyMap<string, string> | null
  allowedPorts: readonly number[]
  /** null: interception is off, every CONNECT gets a plain tunnel. */
  interceptor: Interceptor | null
  /** Hosts that always get a plain tunnel. */
  exclude: readonly HostPattern[]
  pool: UpstreamPool
}

function reject (socket: Socket, status: number, reason: string, message: string, extra = ''): void {
  const body = `session-proxy: ${message}\n`
  socket.end(`HTTP/1.1 ${status} ${reason}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n${extra}\r\n${body}`)
}

/** The profile a CONNECT names itself, or undefined to let each inner request decide. */
function tunnelProfile (req: IncomingMessage, users: ReadonlyMap<string, string> | null): string | undefined {
  const auth = req.headers['proxy-authorization']
  const header = req.headers['x-session-profile']
  const named = typeof header === 'string' && header !== '' ? header : undefined
  const name = resolveProfileName(auth, named, users)
  const hasUser = auth !== undefined && parseProxyAuthorization(auth).username !== ''
  if (!hasUser && named === undefined) return undefined
  assertProfileName(name)
  return name
}

export function handleConnect (deps: TunnelDeps, req: IncomingMessage, client: Socket, head: Buffer): void {
  const target = req.url ?? ''
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})$/.exec(target)
  if (m === null) {
    reject(client, 400, 'Bad Request', `CONNECT target ${JSON.stringify(target.slice(0, 100))} is not host:port`)
    return
  }
  let profile: string | undefined
  try {
    profile = tunnelProfile(req, deps.users)
  } catch (err) {
    const e = asProxyError(err)
    reject(client, e.statusCode, e.statusCode === 407 ? 'Proxy Authentication Required' : 'Bad Request', e.message, e.statusCode === 407 ? 'proxy-authenticate: Basic realm="session-proxy"\r\n' : '')
    return
  }
  const host = m[1]!.replace(/^\[|\]$/g, '').toLowerCase()
  const port = Number(m[2])
  if (!deps.allowedPorts.includes(port)) {
    reject(client, 403, 'Forbidden', `CONNECT to port ${port} is not allowed (allowed: ${deps.allowedPorts.join(', ')}; see connect.allowedPorts)`)
    deps.log.info({ method: 'CONNECT', host: target, status: 403, error: 'SP_CONNECT_PORT' }, 'rejected')
    return
  }
  const bracketed = host.includes(':') ? `[${host}]` : host
  const authority = port === 443 ? bracketed : `${bracketed}:${port}`
  if (deps.interceptor !== null && matchesAny(deps.exclude, bracketed, port) === null) {
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n')
    deps.interceptor.accept(client, head, { host, port, authority, profile })
    return
  }
  plainTunnel(deps, client, head, host, port, authority, target)
}

function plainTunnel (deps: TunnelDeps, client: Socket, head: Buffer, host: string, port: number, authority: string, target: string): void {
  let closed = false
  client.once('close', () => { closed = true })
  client.on('error', () => {})
  deps.pool.openTunnel(host, port, authority).then((upstream) => {
    if (closed) { upstream.destroy(); return }
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n')
    if (head.length > 0) upstream.write(head)
    upstream.pipe(client)
    client.pipe(upstream)
    upstream.on('error', () => client.destroy())
    client.once('close', () => upstream.destroy())
    upstream.once('close', () => client.destroy())
    deps.log.info({ method: 'CONNECT', host: target, tunnel: 'plain' }, 'tunnel')
  }, (err: NodeJS.ErrnoException) => {
    reject(client, 502, 'Bad Gateway', `cannot open tunnel to ${target}: ${err instanceof SessionProxyError ? err.message : err.code ?? err.message}`)
    deps.log.info({ method: 'CONNECT', host: target, error: err.code ?? err.message }, 'tunnel error')
  })
}
