import t, { type Test } from 'tap'
import { ProxyAgent } from 'undici'
import { adminGet, cleanup, curl, startProxy } from '../helpers/proxy.js'
import { createTestCa } from '../helpers/tls.js'
import { openWs, startWsUpstream, type WsSession } from '../helpers/ws.js'

const cookieOf = (stdout: string): string | null => (JSON.parse(stdout) as { cookie: string | null }).cookie

async function exchange (t: Test, ws: WsSession): Promise<void> {
  t.equal(await ws.next(), 'hello', 'server to client')
  ws.send('ping')
  t.equal(await ws.next(), 'echo:ping', 'client to server and back')
  const bytes = Buffer.from([0, 1, 2, 254, 255])
  ws.send(bytes)
  t.same(await ws.next(), bytes, 'binary frames pass untouched')
  ws.send('x'.repeat(200_000))
  t.equal(((await ws.next()) as string).length, 200_005, 'a large message in both directions')
  t.equal(await ws.close(), 1000, 'a clean close')
}

t.test('WebSocket through the proxy (ws://, absolute form)', async (t) => {
  const up = await startWsUpstream()
  const proxy = await startProxy()
  const agent = new ProxyAgent({ uri: proxy.url, proxyTunnel: false })
  t.teardown(async () => { await agent.close(); await proxy.stop(); await up.close(); cleanup(proxy.dataDir) })

  await curl(['-x', proxy.url, `${up.origin}/login?set=sid%3DW1`])
  const ws = await openWs(`ws://127.0.0.1:${up.port}/socket`, agent)
  t.equal(up.handshakes.length, 1)
  t.equal(up.handshakes[0]!.cookie, 'sid=W1', 'the handshake carries the session cookie')
  t.match(up.handshakes[0]!.via, /session-proxy/)
  t.ok(up.handshakes[0]!['sec-websocket-key'], 'Sec-WebSocket-* headers pass')
  await exchange(t, ws)

  const after = await curl(['-x', proxy.url, `${up.origin}/`])
  t.equal(cookieOf(after.stdout), 'sid=W1; ws=1', 'Set-Cookie on the 101 was captured')
})

t.test('WebSocket inside an intercepted HTTPS tunnel (wss://)', async (t) => {
  const ca = createTestCa()
  const up = await startWsUpstream(ca)
  const proxy = await startProxy({ args: ['--upstream-ca', ca.file, '--connect-port', String(up.port)] })
  const proxyCa = (await adminGet(proxy, '/_session/ca.pem')).body
  const agent = new ProxyAgent({ uri: proxy.url, requestTls: { ca: proxyCa } })
  t.teardown(async () => { await agent.close(); await proxy.stop(); await up.close(); cleanup(proxy.dataDir, ca.dir) })

  const ws1 = await openWs(`wss://localhost:${up.port}/socket`, agent)
  t.equal(up.handshakes[0]!.cookie, undefined, 'no cookie yet')
  await exchange(t, ws1)
  const ws2 = await openWs(`wss://localhost:${up.port}/socket`, agent)
  t.equal(up.handshakes[1]!.cookie, 'ws=1', 'the cookie from the first 101 is sent on the next handshake')
  t.equal(await ws2.next(), 'hello')
  await ws2.close()
  const jar = await adminGet(proxy, '/_session/profiles/default/cookies')
  t.match(jar.json, { cookies: [{ name: 'ws', value: '2', domain: 'localhost' }] })
})

t.test('WebSocket in reverse mode', async (t) => {
  const up = await startWsUpstream()
  const proxy = await startProxy({ args: ['--reverse', up.origin] })
  t.teardown(async () => { await proxy.stop(); await up.close(); cleanup(proxy.dataDir) })

  await curl([`${proxy.url}/login?set=sid%3DREV`])
  const ws = await openWs(`ws://127.0.0.1:${proxy.port}/socket`, undefined, { 'X-Session-Profile': 'default' })
  t.equal(up.handshakes[0]!.cookie, 'sid=REV', 'the handshake carries the session cookie')
  t.equal(up.handshakes[0]!.host, `127.0.0.1:${up.port}`, 'Host is the upstream')
  t.notOk(up.handshakes[0]!['x-session-profile'])
  await exchange(t, ws)
})

t.test('an upgrade the upstream refuses is relayed as a response', async (t) => {
  const up = await startWsUpstream()
  up.server.removeAllListeners('upgrade')
  up.server.on('upgrade', (_req, socket) => {
    socket.end('HTTP/1.1 403 Forbidden\r\nset-cookie: refused=1; Path=/\r\ncontent-length: 6\r\n\r\nno ws\n')
  })
  const proxy = await startProxy()
  t.teardown(async () => { await proxy.stop(); await up.close(); cleanup(proxy.dataDir) })
  const r = await curl(['-x', proxy.url, '-i', '-H', 'Connection: Upgrade', '-H', 'Upgrade: websocket', '-H', 'Sec-WebSocket-Version: 13', '-H', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', `${up.origin}/socket`])
  t.equal(r.status, 403)
  t.match(r.stdout, /no ws/)
  t.equal(cookieOf((await curl(['-x', proxy.url, `${up.origin}/`])).stdout), 'refused=1', 'its cookies are captured too')
})
