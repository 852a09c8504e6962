/**
 * Hostile clients at every entry: a refusal followed by a reset, garbage,
 * resets inside tunnels. The proxy answers what it can, never crashes, and
 * its process guard never fires (stop() fails the test if it did).
 */
import net from 'node:net'
import { networkInterfaces } from 'node:os'
import t from 'tap'
import { adminGet, cleanup, curl, echoCookies, run, startProxy, startUpstream } from '../helpers/proxy.js'
import { connectRaw, readResponse, sendThenReset, sleep } from '../helpers/raw-client.js'

t.test('curl -p to a refused CONNECT port does not kill the proxy (real curl)', async (t) => {
  const proxy = await startProxy()
  t.teardown(async () => { await proxy.stop(); cleanup(proxy.dataDir) })
  const r = await curl(['-p', '-x', `http://127.0.0.1:${proxy.port}`, 'http://example.test:12345/'])
  t.not(r.exitCode, 0, 'curl reports the refused tunnel')
  t.match(r.stderr, /403/, 'curl saw the 403')
  await sleep(300)
  t.equal(proxy.proc.exitCode, null, 'the proxy is still running')
  t.equal((await adminGet(proxy, '/_session/health')).status, 200)
  // wget through the same refusal
  const w = await run('wget', ['-q', '-O', '-', '-e', 'use_proxy=yes', '-e', `https_proxy=http://127.0.0.1:${proxy.port}`, '--tries=1', 'https://localhost:9443/'], { timeoutMs: 20_000 })
  t.not(w.code, 0)
  t.equal((await adminGet(proxy, '/_session/health')).status, 200, 'still serving after wget')
})

t.test('every CONNECT refusal is a coded answer and survives a client reset', async (t) => {
  const proxy = await startProxy()
  const authed = await startProxy({ config: { proxyAuth: { users: { alice: { value: 'pw' } } } } })
  t.teardown(async () => { await proxy.stop(); await authed.stop(); cleanup(proxy.dataDir, authed.dataDir) })
  const cases: Array<[string, string, number, string, number]> = [
    ['no port', 'CONNECT example.test HTTP/1.1\r\nHost: example.test\r\n\r\n', 400, 'SP_CONNECT_TARGET', proxy.port],
    ['port not allowed', 'CONNECT example.test:12345 HTTP/1.1\r\nHost: example.test:12345\r\n\r\n', 403, 'SP_CONNECT_PORT', proxy.port],
    ['invalid X-Session-Profile', 'CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\nX-Session-Profile: ../../etc\r\n\r\n', 400, 'SP_PROFILE_INVALID', proxy.port],
    ['non-Basic Proxy-Authorization', 'CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\nProxy-Authorization: Bearer abc\r\n\r\n', 400, 'SP_PROXY_AUTH_SCHEME', proxy.port],
    ['no credentials', 'CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\n\r\n', 407, 'SP_PROXY_AUTH_REQUIRED', authed.port],
    ['non-Basic with proxyAuth', 'CONNECT example.test:443 HTTP/1.1\r\nHost: example.test:443\r\nProxy-Authorization: Bearer abc\r\n\r\n', 400, 'SP_PROXY_AUTH_SCHEME', authed.port]
  ]
  for (const [name, bytes, status, code, port] of cases) {
    const r = await sendThenReset(port, bytes)
    t.equal(r.status, status, `${name}: status`)
    t.equal(r.headers['x-session-proxy-error'], code, `${name}: code`)
    t.match(r.head, /^HTTP\/1\.1 \d{3} [A-Z][a-z]/, `${name}: a real status text`)
    t.match(r.body, /^session-proxy: /, `${name}: a readable reason`)
    if (status === 407) t.match(r.headers['proxy-authenticate'] ?? '', /^Basic/)
  }
  await sleep(300)
  t.equal(proxy.proc.exitCode, null, 'still running after the resets')
  t.equal(authed.proc.exitCode, null)
  t.equal((await adminGet(proxy, '/_session/health')).status, 200, 'and answering')
})

t.test('refused upgrades and parse errors, then a reset', async (t) => {
  const proxy = await startProxy()
  t.teardown(async () => { await proxy.stop(); cleanup(proxy.dataDir) })
  const upgrade = 'Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'
  const health = await sendThenReset(proxy.port, `GET /_session/health HTTP/1.1\r\nHost: 127.0.0.1\r\n${upgrade}\r\n`)
  t.equal(health.status, 501)
  t.equal(health.headers['x-session-proxy-error'], 'SP_UPGRADE_UNSUPPORTED')
  const ftp = await sendThenReset(proxy.port, `GET ftp://x/ HTTP/1.1\r\nHost: x\r\n${upgrade}\r\n`)
  t.equal(ftp.status, 400)
  t.equal(ftp.headers['x-session-proxy-error'], 'SP_BAD_TARGET')
  const garbage = await sendThenReset(proxy.port, 'GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n')
  t.equal(garbage.status, 400, 'smuggling shape refused')
  t.equal(garbage.headers['x-session-proxy-error'], 'SP_CLIENT_PARSE')
  // A client that resets in the middle of its head.
  const s = await connectRaw(proxy.port)
  s.write('GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: 127')
  await sleep(50)
  s.resetAndDestroy()
  await sleep(300)
  t.equal(proxy.proc.exitCode, null)
  t.equal((await adminGet(proxy, '/_session/health')).status, 200)
})

t.test('resets inside intercepted and plain tunnels', async (t) => {
  const up = await startUpstream(echoCookies())
  // A raw upstream that writes forever to whoever connects, then is reset.
  const raw = net.createServer((s) => {
    s.on('error', () => {})
    const chunk = Buffer.alloc(64 * 1024, 0x61)
    const pump = (): void => { while (!s.destroyed && s.write(chunk)); }
    s.on('drain', pump)
    pump()
    setTimeout(() => s.resetAndDestroy(), 200)
  })
  await new Promise<void>((resolve) => raw.listen(0, '127.0.0.1', resolve))
  const rawPort = (raw.address() as net.AddressInfo).port
  const intercepting = await startProxy({ args: ['--connect-port', String(up.port)] })
  const plain = await startProxy({ args: ['--no-intercept', '--connect-port', String(rawPort), '--connect-port', String(up.port)] })
  t.teardown(async () => {
    await intercepting.stop(); await plain.stop(); await up.close()
    await new Promise<void>((resolve) => raw.close(() => resolve()))
    cleanup(intercepting.dataDir, plain.dataDir)
  })

  // Intercepted: a TLS record header followed by garbage, then a reset; and a reset mid-handshake.
  for (const bytes of [Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5]), Buffer.from([0x16, 0x03, 0x01])]) {
    const s = await connectRaw(intercepting.port)
    s.write(`CONNECT 127.0.0.1:${up.port} HTTP/1.1\r\nHost: 127.0.0.1:${up.port}\r\n\r\n`)
    await new Promise((resolve) => s.once('data', resolve))
    s.write(bytes)
    await sleep(100)
    s.resetAndDestroy()
  }
  // Intercepted, plain HTTP inside: garbage gets a 400, then a reset.
  {
    const s = await connectRaw(intercepting.port)
    s.write(`CONNECT 127.0.0.1:${up.port} HTTP/1.1\r\nHost: 127.0.0.1:${up.port}\r\n\r\n`)
    await new Promise((resolve) => s.once('data', resolve))
    s.write('GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n')
    const r = await readResponse(s)
    t.equal(r.status, 400, 'parse error inside a tunnel gets a 400')
    t.equal(r.headers['x-session-proxy-error'], 'SP_CLIENT_PARSE')
    s.resetAndDestroy()
  }
  // Plain tunnel: the upstream resets while the client does not read; then the client resets.
  for (let i = 0; i < 2; i++) {
    const s = await connectRaw(plain.port)
    s.write(`CONNECT 127.0.0.1:${rawPort} HTTP/1.1\r\nHost: 127.0.0.1:${rawPort}\r\n\r\n`)
    await new Promise((resolve) => s.once('data', resolve))
    s.pause()
    await sleep(i === 0 ? 400 : 50)
    s.resetAndDestroy()
  }
  // A tunnel to a port where nothing listens: a coded 502, then a reset.
  const closed = net.createServer()
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
  const closedPort = (closed.address() as net.AddressInfo).port
  await new Promise<void>((resolve) => closed.close(() => resolve()))
  const plainRefused = await startProxy({ args: ['--no-intercept', '--connect-port', String(closedPort)] })
  t.teardown(async () => { await plainRefused.stop(); cleanup(plainRefused.dataDir) })
  const r = await sendThenReset(plainRefused.port, `CONNECT 127.0.0.1:${closedPort} HTTP/1.1\r\nHost: x\r\n\r\n`)
  t.equal(r.status, 502)
  t.equal(r.headers['x-session-proxy-error'], 'SP_UPSTREAM_REFUSED', 'tunnel open failures are mapped like other upstream errors')

  await sleep(300)
  for (const p of [intercepting, plain, plainRefused]) {
    t.equal(p.proc.exitCode, null)
    t.equal((await adminGet(p, '/_session/health')).status, 200)
  }
})

function ownNonLoopbackAddress (): string | undefined {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address
  }
  return undefined
}

t.test('a client outside allowClients gets a readable 403, not a reset', async (t) => {
  const address = ownNonLoopbackAddress()
  if (address === undefined) { t.pass('skipped: no non-loopback IPv4 address on this machine'); return }
  const proxy = await startProxy({ args: ['--host', '0.0.0.0'], config: { allowClients: ['203.0.113.7'] } })
  t.teardown(async () => { await proxy.stop(); cleanup(proxy.dataDir) })
  const s = await connectRaw(proxy.port, address, address)
  s.write('GET http://example.test/ HTTP/1.1\r\nHost: example.test\r\n\r\n')
  const r = await readResponse(s)
  t.equal(r.status, 403)
  t.equal(r.headers['x-session-proxy-error'], 'SP_CLIENT_NOT_ALLOWED')
  t.match(r.body, /allowClients/)
  s.destroy()
  const local = await curl([`http://127.0.0.1:${proxy.port}/_session/health`])
  t.equal(local.status, 200, 'loopback clients are still served')
})
