/**
 * CONNECT: checks the target, the proxy credentials and the port allowlist,
 * then either intercepts the tunnel (TLS terminated with a minted
 * certificate, see intercept.ts) or, for excluded hosts or with interception
 * off, opens a plain TCP tunnel whose bytes the proxy never inspects.
 */
import type { IncomingMessage } from 'node:http'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { Logger } from 'pino'
import { SessionProxyError } from '../errors.js'
import { matchesAny, type HostPattern } from '../net/host-pattern.js'
import { joinSockets } from '../net/join-sockets.js'
import { assertProfileName } from '../session/profiles.js'
import { parseProxyAuthorization, PROFILE_HEADER, resolveProfileName } from '../session/resolve-profile.js'
import type { Interceptor } from './intercept.js'
import { asProxyError, sendRawError } from './respond.js'
import { mapUpstreamError } from './upstream-errors.js'
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
  /** Bytes a plain tunnel may queue towards either side before it is cut (limits.maxClientBufferBytes). */
  maxBufferBytes: number
  /** Called once a plain tunnel is joined, so shutdown can close it. */
  onTunnel?: (client: Socket, upstream: Duplex) => void
}

function ignore (): void {}

/** The profile a CONNECT names itself, or undefined to let each inner request decide. */
function tunnelProfile (req: IncomingMessage, users: ReadonlyMap<string, string> | null): string | undefined {
  const auth = req.headers['proxy-authorization']
  const header = req.headers[PROFILE_HEADER]
  const named = typeof header === 'string' && header !== '' ? header : undefined
  const name = resolveProfileName(auth, named, users)
  const hasUser = auth !== undefined && parseProxyAuthorization(auth).username !== ''
  if (!hasUser && named === undefined) return undefined
  assertProfileName(name)
  return name
}

function refuse (deps: TunnelDeps, client: Socket, target: string, err: SessionProxyError): void {
  sendRawError(client, err)
  deps.log.info({ method: 'CONNECT', host: target.slice(0, 200), status: err.statusCode, error: err.code }, 'rejected')
}

export function handleConnect (deps: TunnelDeps, req: IncomingMessage, client: Socket, head: Buffer): void {
  // Node hands CONNECT sockets over without an error listener.
  client.on('error', ignore)
  const target = req.url ?? ''
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})$/.exec(target)
  if (m === null || Number(m[2]) === 0 || Number(m[2]) > 65535) {
    refuse(deps, client, target, new SessionProxyError('SP_CONNECT_TARGET', 400, `CONNECT target ${JSON.stringify(target.slice(0, 100))} is not host:port`))
    return
  }
  let profile: string | undefined
  try {
    profile = tunnelProfile(req, deps.users)
  } catch (err) {
    refuse(deps, client, target, asProxyError(err))
    return
  }
  const host = m[1]!.replace(/^\[|\]$/g, '').toLowerCase()
  const port = Number(m[2])
  if (!deps.allowedPorts.includes(port)) {
    refuse(deps, client, target, new SessionProxyError('SP_CONNECT_PORT', 403, `CONNECT to port ${port} is not allowed (allowed: ${deps.allowedPorts.join(', ')}; see connect.allowedPorts)`))
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
  // Bytes a client sends before the 200 wait in the socket, not in memory.
  client.pause()
  deps.pool.openTunnel(host, port, authority).then((upstream) => {
    upstream.on('error', ignore)
    if (closed) { upstream.destroy(); return }
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n')
    if (head.length > 0) upstream.write(head)
    joinSockets(client, upstream, deps.maxBufferBytes)
    client.resume()
    deps.onTunnel?.(client, upstream)
    deps.log.info({ method: 'CONNECT', host: target, tunnel: 'plain' }, 'tunnel')
  }, (err: unknown) => {
    const mapped = err instanceof SessionProxyError ? err : mapUpstreamError(err, authority)
    refuse(deps, client, target, mapped)
  }).catch((err: unknown) => {
    // A bug in the lines above: log it and free both sides rather than leak them.
    deps.log.error({ err, method: 'CONNECT', host: target }, 'tunnel setup failed')
    client.destroy()
  })
}
