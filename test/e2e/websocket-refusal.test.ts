/**
 * A refused WebSocket upgrade is an ordinary response: it shares the request
 * ids of forwarded exchanges, and its cookie changes are in the journal
 * before the client sees it (as for the 101).
 */
import net from 'node:net'
import t from 'tap'
import { adminGet, cleanup, curl, echoCookies, startProxy, startUpstream } from '../helpers/proxy.js'
import { connectRaw, readResponse, sleep } from '../helpers/raw-client.js'

t.test('a refused upgrade: cookie journaled before relaying, one request-id sequence', async (t) => {
  const refuser = net.createServer((s) => {
    s.on('error', () => {})
    s.once('data', () => {
      const body = 'login first'
      s.end(`HTTP/1.1 403 Forbidden\r\nset-cookie: refused=yes; Path=/; Max-Age=3600\r\ncontent-length: ${body.length}\r\n\r\n${body}`)
    })
  })
  await new Promise<void>((resolve) => refuser.listen(0, '127.0.0.1', resolve))
  const port = (refuser.address() as net.AddressInfo).port
  const up = await startUpstream(echoCookies())
  const proxy = await startProxy()
  t.teardown(async () => { await up.close(); await new Promise<void>((resolve) => refuser.close(() => resolve())); cleanup(proxy.dataDir) })

  t.equal((await curl(['-x', proxy.url, `${up.origin}/a`])).status, 200)
  const s = await connectRaw(proxy.port)
  s.write(`GET http://127.0.0.1:${port}/ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`)
  const r = await readResponse(s)
  t.equal(r.status, 403, 'the refusal is relayed')
  t.match(r.body, /login first/)
  t.notOk('x-session-proxy-persist' in r.headers, 'the write succeeded')
  s.destroy()
  // kill -9 right after the client has the answer: the cookie must already be on disk.
  await proxy.kill9()
  const again = await startProxy({ dataDir: proxy.dataDir })
  t.teardown(async () => { await again.stop() })
  t.match((await adminGet(again, '/_session/profiles/default/cookies')).body, /"refused"/, 'the cookie survived kill -9')

  t.equal((await curl(['-x', proxy.url.replace(String(proxy.port), String(again.port)), `${up.origin}/b`])).status, 200)
  await sleep(200)
  const ids = proxy.output.concat(again.output)
    .filter((l) => l.startsWith('{') && l.includes('"req":'))
    .map((l) => JSON.parse(l) as { req: unknown, websocket?: boolean })
  const ws = ids.filter((l) => l.websocket === true)
  t.ok(ws.length > 0, 'the upgrade was logged')
  t.ok(ws.every((l) => typeof l.req === 'number'), 'upgrades use the numeric exchange ids of forward.ts')
  const first = ids.filter((l) => l.websocket !== true).map((l) => l.req)
  t.notOk(first.includes(ws[0]!.req), 'and never reuse one')
})
