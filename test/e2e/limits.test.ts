/**
 * limits.*: every bound on what a client may cost has a config key and a
 * coded answer, on the proxy's own listener and inside intercepted tunnels.
 */
import { readFileSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import t from 'tap'
import { adminGet, cleanup, echoCookies, startProxy, startUpstream } from '../helpers/proxy.js'
import { connectRaw, readResponse, sleep } from '../helpers/raw-client.js'
import { startWsUpstream } from '../helpers/ws.js'

function rssBytes (pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return Number(m?.[1] ?? 0) * 1024
}

/** Opens a tunnel through the proxy; inside it the client speaks plain HTTP (intercepted, http:// target). */
async function tunnel (proxyPort: number, port: number): Promise<net.Socket> {
  const s = await connectRaw(proxyPort)
  s.write(`CONNECT 127.0.0.1:${port} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`)
  await new Promise((resolve) => s.once('data', resolve))
  return s
}

t.test('maxHeaderBytes: 431 SP_HEADERS_TOO_LARGE, also inside a tunnel', async (t) => {
  const up = await startUpstream(echoCookies())
  const proxy = await startProxy({ config: { limits: { maxHeaderBytes: 4096 } }, args: ['--connect-port', String(up.port)] })
  t.teardown(async () => { await proxy.stop(); await up.close(); cleanup(proxy.dataDir) })
  const big = 'X-Big: ' + 'a'.repeat(6000) + '\r\n'
  const s = await connectRaw(proxy.port)
  s.write(`GET ${up.origin}/ HTTP/1.1\r\nHost: 127.0.0.1:${up.port}\r\n${big}\r\n`)
  const r = await readResponse(s)
  t.equal(r.status, 431)
  t.equal(r.headers['x-session-proxy-error'], 'SP_HEADERS_TOO_LARGE')
  s.destroy()
  const inner = await tunnel(proxy.port, up.port)
  inner.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1:${up.port}\r\n${big}\r\n`)
  const ri = await readResponse(inner)
  t.equal(ri.status, 431, 'inside an intercepted tunnel')
  t.equal(ri.headers['x-session-proxy-error'], 'SP_HEADERS_TOO_LARGE')
  inner.destroy()
  t.equal(up.requests.length, 0, 'nothing reached the upstream')
})

t.test('clientHeadersTimeoutMs: an unfinished head gets 408 SP_CLIENT_TIMEOUT, also inside a tunnel', async (t) => {
  const up = await startUpstream(echoCookies())
  const proxy = await startProxy({ config: { limits: { clientHeadersTimeoutMs: 400 } }, args: ['--connect-port', String(up.port)] })
  t.teardown(async () => { await proxy.stop(); await up.close(); cleanup(proxy.dataDir) })
  const s = await connectRaw(proxy.port)
  s.write(`GET ${up.origin}/ HTTP/1.1\r\nHost: 127.0.0.1`)
  const r = await readResponse(s)
  t.equal(r.status, 408)
  t.equal(r.headers['x-session-proxy-error'], 'SP_CLIENT_TIMEOUT')
  s.destroy()
  const inner = await tunnel(proxy.port, up.port)
  inner.write('GET / HTTP/1.1\r\nHost: 127.0.0.1')
  const ri = await readResponse(inner)
  t.equal(ri.status, 408, 'inside an intercepted tunnel')
  t.equal(ri.headers['x-session-proxy-error'], 'SP_CLIENT_TIMEOUT')
  inner.destroy()
})

t.test('clientBodyIdleTimeoutMs: a stalled body does not hold the upstream request', async (t) => {
  const seen: Array<{ url: string, closed: Promise<void> }> = []
  const up = await startUpstream((req, res) => {
    const closed = new Promise<void>((resolve) => req.socket.once('close', () => resolve()))
    seen.push({ url: req.url!, closed })
    if (req.url === '/early') {
      // Answers before the body is complete, then keeps streaming.
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.write('started\n')
      return
    }
    req.resume()
    req.on('end', () => res.end('got it'))
  })
  const proxy = await startProxy({ config: { limits: { clientBodyIdleTimeoutMs: 500 } }, args: ['--connect-port', String(up.port)] })
  t.teardown(async () => { await proxy.stop(); await up.close(); cleanup(proxy.dataDir) })

  const s = await connectRaw(proxy.port)
  s.write(`POST ${up.origin}/stall HTTP/1.1\r\nHost: 127.0.0.1:${up.port}\r\nContent-Length: 100\r\n\r\n0123456789`)
  const r = await readResponse(s)
  t.equal(r.status, 408, 'no response yet: 408')
  t.equal(r.headers['x-session-proxy-error'], 'SP_CLIENT_TIMEOUT')
  s.destroy()
  t.equal(seen.length, 1)
  await seen[0]!.closed
  t.pass('the upstream request was aborted')

  // A response already under way: the connection is cut.
  const e = await connectRaw(proxy.port)
  e.write(`POST ${up.origin}/early HTTP/1.1\r\nHost: 127.0.0.1:${up.port}\r\nContent-Length: 100\r\n\r\n0123456789`)
  const early = await readResponse(e)
  t.equal(early.status, 200, 'the head was relayed')
  t.notOk(early.body.endsWith('got it'))
  await seen[1]!.closed
  t.pass('cut, and the upstream request aborted')

  // The same inside an intercepted tunnel.
  const inner = await tunnel(proxy.port, up.port)
  inner.write(`POST /inner HTTP/1.1\r\nHost: 127.0.0.1:${up.port}\r\nContent-Length: 100\r\n\r\n0123`)
  const ri = await readResponse(inner)
  t.equal(ri.status, 408, 'inside a tunnel')
  t.equal(ri.headers['x-session-proxy-error'], 'SP_CLIENT_TIMEOUT')
  inner.destroy()
  await seen[2]!.closed

  // A slow but steady body is not cut.
  const slow = await connectRaw(proxy.port)
  slow.write(`POST ${up.origin}/slow HTTP/1.1\r\nHost: 127.0.0.1:${up.port}\r\nContent-Length: 6\r\n\r\n`)
  for (const c of ['ab', 'cd', 'ef']) { await sleep(300); slow.write(c) }
  const rs = await readResponse(slow)
  t.equal(rs.status, 200, 'a body that keeps coming is relayed')
  t.equal(rs.body, 'got it')
  slow.destroy()
})

t.test('maxClientConnections: idle keep-alive connections are shed first, then new ones get a readable 503', async (t) => {
  const up = await startUpstream(echoCookies())
  const proxy = await startProxy({ config: { limits: { maxClientConnections: 4 } } })
  t.teardown(async () => { await proxy.stop(); await up.close(); cleanup(proxy.dataDir) })
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 })
  t.teardown(() => agent.destroy())
  const get = async (path: string): Promise<number> => await new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: proxy.port, path, agent }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode!)) }).on('error', reject)
  })
  // Four kept-alive, idle connections fill the cap.
  const statuses = await Promise.all([1, 2, 3, 4].map(async () => await get('/_session/health')))
  t.same(statuses, [200, 200, 200, 200])
  t.equal(Object.values(agent.freeSockets).flat().length, 4, 'four idle keep-alive connections')
  t.equal((await adminGet(proxy, '/_session/health')).status, 200, 'a new client gets in: an idle connection was shed')

  // Four that never finish their head: nothing is idle, the next one is refused readably.
  agent.destroy()
  const hogs: net.Socket[] = []
  for (let i = 0; i < 4; i++) {
    const h = await connectRaw(proxy.port)
    h.write('GET /_session/health HTTP/1.1\r\nHost: 127.0.0.1\r\n')
    hogs.push(h)
  }
  await sleep(200)
  const s = await connectRaw(proxy.port)
  s.write('GET /_session/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
  const r = await readResponse(s)
  t.equal(r.status, 503)
  t.equal(r.headers['x-session-proxy-error'], 'SP_OVERLOADED')
  t.match(r.body, /maxClientConnections/)
  for (const h of hogs) h.destroy()
  await sleep(200)
  t.equal((await adminGet(proxy, '/_session/health')).status, 200, 'served again once they are gone')
})

t.test('1,100 never-finishing connections under a 256 descriptor limit do not lock everyone out', async (t) => {
  const proxy = await startProxy({ wrap: ['prlimit', '--nofile=256:256', '--'], config: { limits: { maxClientConnections: 150 } } })
  t.teardown(async () => { await proxy.stop(); cleanup(proxy.dataDir) })
  const hogs: net.Socket[] = []
  t.teardown(() => { for (const h of hogs) h.destroy() })
  for (let i = 0; i < 1100; i++) {
    const h = net.connect(proxy.port, '127.0.0.1')
    h.on('error', () => {})
    h.on('data', () => {})
    h.write('GET /_session/health HTTP/1.1\r\nHost: 127.0.0.1\r\n')
    hogs.push(h)
    if (i % 100 === 99) await sleep(20)
  }
  await sleep(1000)
  t.equal(proxy.proc.exitCode, null, 'the proxy is still running')
  const s = await connectRaw(proxy.port)
  s.write('GET /_session/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
  const r = await readResponse(s)
  t.equal(r.status, 503, 'a readable refusal, not a reset')
  t.equal(r.headers['x-session-proxy-error'], 'SP_OVERLOADED')
  s.destroy()
  for (const h of hogs) h.destroy()
  await sleep(500)
  t.equal((await adminGet(proxy, '/_session/health')).status, 200, 'admin answers again')
})

t.test('maxClientBufferBytes: an upgrade refusal with a huge body to a client that does not read stays bounded', async (t) => {
  const TOTAL = 200 * 1024 * 1024
  let written = 0
  const up = net.createServer((s) => {
    s.on('error', () => {})
    s.once('data', () => {
      s.write(`HTTP/1.1 403 Forbidden\r\ncontent-type: application/octet-stream\r\ncontent-length: ${TOTAL}\r\n\r\n`)
      const chunk = Buffer.alloc(256 * 1024, 0x62)
      const pump = (): void => {
        while (written < TOTAL && !s.destroyed) {
          written += chunk.length
          if (!s.write(chunk)) return
        }
      }
      s.on('drain', pump)
      pump()
    })
  })
  await new Promise<void>((resolve) => up.listen(0, '127.0.0.1', resolve))
  const upPort = (up.address() as net.AddressInfo).port
  const proxy = await startProxy({ config: { limits: { maxClientBufferBytes: 1024 * 1024 } } })
  t.teardown(async () => { await proxy.stop(); await new Promise<void>((resolve) => up.close(() => resolve())); cleanup(proxy.dataDir) })
  const before = rssBytes(proxy.proc.pid!)
  const s = await connectRaw(proxy.port)
  s.write(`GET http://127.0.0.1:${upPort}/ws HTTP/1.1\r\nHost: 127.0.0.1:${upPort}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`)
  s.pause()
  // Wait until the upstream is stuck (backpressure) or has written everything.
  let last = -1
  while (written !== last && written < TOTAL) { last = written; await sleep(1000) }
  const grown = rssBytes(proxy.proc.pid!) - before
  t.ok(written < TOTAL / 2, `the upstream was paused (wrote ${Math.round(written / 1048576)} MiB of 200)`)
  t.ok(grown < 64 * 1024 * 1024, `proxy RSS grew by ${Math.round(grown / 1048576)} MiB`)
  s.destroy()
  await sleep(200)
  t.equal((await adminGet(proxy, '/_session/health')).status, 200)
})

t.test('a plain tunnel to a client that does not read stays bounded too', async (t) => {
  const TOTAL = 200 * 1024 * 1024
  let written = 0
  const up = net.createServer((s) => {
    s.on('error', () => {})
    const chunk = Buffer.alloc(256 * 1024, 0x63)
    const pump = (): void => {
      while (written < TOTAL && !s.destroyed) {
        written += chunk.length
        if (!s.write(chunk)) return
      }
    }
    s.on('drain', pump)
    pump()
  })
  await new Promise<void>((resolve) => up.listen(0, '127.0.0.1', resolve))
  const upPort = (up.address() as net.AddressInfo).port
  const proxy = await startProxy({ args: ['--no-intercept', '--connect-port', String(upPort)], config: { limits: { maxClientBufferBytes: 1024 * 1024 } } })
  t.teardown(async () => { await proxy.stop(); await new Promise<void>((resolve) => up.close(() => resolve())); cleanup(proxy.dataDir) })
  const before = rssBytes(proxy.proc.pid!)
  const s = await connectRaw(proxy.port)
  s.write(`CONNECT 127.0.0.1:${upPort} HTTP/1.1\r\nHost: x\r\n\r\n`)
  await new Promise((resolve) => s.once('data', resolve))
  s.pause()
  let last = -1
  while (written !== last && written < TOTAL) { last = written; await sleep(1000) }
  const grown = rssBytes(proxy.proc.pid!) - before
  t.ok(written < TOTAL / 2, `the upstream was paused (wrote ${Math.round(written / 1048576)} MiB of 200)`)
  t.ok(grown < 64 * 1024 * 1024, `proxy RSS grew by ${Math.round(grown / 1048576)} MiB`)
  s.destroy()
})

t.test('the head timeout inside a tunnel does not cut a WebSocket that outlives it', async (t) => {
  const up = await startWsUpstream()
  const proxy = await startProxy({ config: { limits: { clientHeadersTimeoutMs: 300 } }, args: ['--connect-port', String(up.port)] })
  t.teardown(async () => { await proxy.stop(); await up.close(); cleanup(proxy.dataDir) })
  const s = await tunnel(proxy.port, up.port)
  let got = ''
  s.on('data', (c: Buffer) => { got += c.toString('latin1') })
  s.write(`GET /socket HTTP/1.1\r\nHost: 127.0.0.1:${up.port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`)
  while (!got.includes('hello')) await sleep(50)
  t.match(got, /^HTTP\/1\.1 101 /)
  await sleep(1200)
  // A masked text frame "ping" (mask 0), answered with "echo:ping".
  s.write(Buffer.from([0x81, 0x84, 0, 0, 0, 0, ...Buffer.from('ping')]))
  while (!got.includes('echo:ping') && !s.destroyed) await sleep(50)
  t.match(got, /echo:ping/, 'the WebSocket still works after the head timeout')
  s.destroy()
})
