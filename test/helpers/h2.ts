/**
 * An HTTP/2 client inside a CONNECT tunnel through the proxy (the h2 entry
 * of src/proxy/intercept.ts): the tunnel, the session on it, and a GET.
 */
import http from 'node:http'
import http2 from 'node:http2'
import type net from 'node:net'
import tls from 'node:tls'
import type { ProxyProcess } from './proxy.js'

/** A CONNECT tunnel to `authority`, as `user` (Proxy-Authorization with an empty password) when given. */
export async function tunnel (proxy: ProxyProcess, authority: string, user?: string): Promise<net.Socket> {
  return await new Promise<net.Socket>((resolve, reject) => {
    const headers: Record<string, string> = { host: authority }
    if (user !== undefined) headers['proxy-authorization'] = `Basic ${Buffer.from(`${user}:`).toString('base64')}`
    const req = http.request({ host: '127.0.0.1', port: proxy.port, method: 'CONNECT', path: authority, headers, agent: false })
    req.once('connect', (res, sock) => res.statusCode === 200 ? resolve(sock) : reject(new Error(`CONNECT ${res.statusCode ?? 0}`)))
    req.once('error', reject)
    req.end()
  })
}

/** An h2 session inside a tunnel, trusting the proxy's CA `ca`; resolves once the server's SETTINGS arrived. */
export async function h2Through (proxy: ProxyProcess, authority: string, ca: string, opts: { user?: string, settings?: http2.Settings } = {}): Promise<http2.ClientHttp2Session> {
  const socket = await tunnel(proxy, authority, opts.user)
  const session = http2.connect(`https://${authority}`, {
    settings: opts.settings,
    createConnection: () => tls.connect({ socket, servername: 'localhost', ca, ALPNProtocols: ['h2'] })
  })
  session.on('error', () => {})
  await new Promise<void>((resolve, reject) => { session.once('remoteSettings', () => resolve()); session.once('error', reject) })
  return session
}

export async function h2Get (session: http2.ClientHttp2Session, path: string): Promise<{ status: number, body: string }> {
  return await new Promise((resolve, reject) => {
    const s = session.request({ ':path': path })
    let status = 0
    let body = ''
    s.on('response', (h) => { status = Number(h[':status']) })
    s.setEncoding('utf8')
    s.on('data', (c: string) => { body += c })
    s.on('end', () => resolve({ status, body }))
    s.on('error', reject)
  })
}
