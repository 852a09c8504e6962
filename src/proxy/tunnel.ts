/**
 * CONNECT: a plain TCP tunnel to an allowed port. The client's bytes are not
 * inspected, so a tunnelled session gets no cookie handling.
 */
import type { IncomingMessage } from 'node:http'
import net, { type Socket } from 'node:net'
import type { Logger } from 'pino'
import { resolveProfileName } from '../session/resolve-profile.js'
import { asProxyError } from './respond.js'

export interface TunnelDeps {
  log: Logger
  users: ReadonlyMap<string, string> | null
  allowedPorts: number[]
}

function reject (socket: Socket, status: number, reason: string, message: string, extra = ''): void {
  const body = `session-proxy: ${message}\n`
  socket.end(`HTTP/1.1 ${status} ${reason}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n${extra}\r\n${body}`)
}

export function handleConnect (deps: TunnelDeps, req: IncomingMessage, client: Socket, head: Buffer): void {
  const target = req.url ?? ''
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9._-]+):(\d{1,5})$/.exec(target)
  if (m === null) {
    reject(client, 400, 'Bad Request', `CONNECT target ${JSON.stringify(target.slice(0, 100))} is not host:port`)
    return
  }
  try {
    resolveProfileName(req.headers['proxy-authorization'], undefined, deps.users)
  } catch (err) {
    const e = asProxyError(err)
    reject(client, e.statusCode, e.statusCode === 407 ? 'Proxy Authentication Required' : 'Bad Request', e.message, e.statusCode === 407 ? 'proxy-authenticate: Basic realm="session-proxy"\r\n' : '')
    return
  }
  const host = m[1]!.replace(/^\[|\]$/g, '')
  const port = Number(m[2])
  if (!deps.allowedPorts.includes(port)) {
    reject(client, 403, 'Forbidden', `CONNECT to port ${port} is not allowed (allowed: ${deps.allowedPorts.join(', ')})`)
    return
  }
  const upstream = net.connect({ host, port })
  let connected = false
  upstream.once('connect', () => {
    connected = true
    client.write('HTTP/1.1 200 Connection Established\r\n\r\n')
    if (head.length > 0) upstream.write(head)
    upstream.pipe(client)
    client.pipe(upstream)
  })
  upstream.once('error', (err: NodeJS.ErrnoException) => {
    if (!connected) {
      reject(client, 502, 'Bad Gateway', `cannot open tunnel to ${target}: ${err.code ?? err.message}`)
    } else {
      client.destroy()
    }
    deps.log.info({ method: 'CONNECT', host: target, error: err.code }, 'tunnel error')
  })
  client.once('error', () => upstream.destroy())
  client.once('close', () => upstream.destroy())
  upstream.once('close', () => client.destroy())
}
