/**
 * A tunnel is one profile. The requests inside an intercepted CONNECT
 * tunnel (on the main port or on a profile port) cannot name another
 * profile than the one the tunnel was opened as: an inner Proxy-Authorization
 * is checked against proxyAuth again, and one naming another user, or an
 * X-Session-Profile naming another profile, is refused with 403
 * SP_TUNNEL_PROFILE before anything goes upstream.
 *
 * Plain HTTP inside the tunnel (what undici's ProxyAgent sends for http://
 * targets) goes through the same interception path as TLS, so raw sockets
 * can say exactly which headers the inner requests carry.
 */
import net from 'node:net'
import t from 'tap'
import { cleanup, echoCookies, freePort, startProxy, startUpstream, type ProxyProcess, type Upstream } from '../helpers/proxy.js'
import { connectRaw, parseHead, readResponse, type RawResponse } from '../helpers/raw-client.js'
import { startWsUpstream } from '../helpers/ws.js'

const basic = (user: string, password: string): string => 'Basic ' + Buffer.from(`${user}:${password}`).toString('base64')

/** Reads the CONNECT answer head only (the tunnel stays open after a 200). */
async function readConnectHead (s: net.Socket): Promise<RawResponse> {
  return await new Promise((resolve, reject) => {
    let buf = ''
    const onData = (c: Buffer): void => {
      buf += c.toString('latin1')
      if (!buf.includes('\r\n\r\n')) return
      s.off('data', onData)
      resolve(parseHead(buf))
    }
    s.on('data', onData)
    s.once('close', () => resolve(parseHead(buf)))
    s.once('error', reject)
  })
}

/**
 * CONNECT to `upstream` on `proxyPort` with `connectHeaders`, then one plain
 * HTTP request with `innerHeaders` inside the tunnel. Returns both answers
 * (inner is null when the CONNECT was refused).
 */
async function throughTunnel (proxyPort: number, upstream: Upstream, connectHeaders: string[], innerHeaders: string[], path = '/'): Promise<{ connect: RawResponse, inner: RawResponse | null }> {
  const authority = `127.0.0.1:${upstream.port}`
  const s = await connectRaw(proxyPort)
  try {
    s.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n${connectHeaders.map((h) => h + '\r\n').join('')}\r\n`)
    const connect = await readConnectHead(s)
    if (connect.status !== 200) return { connect, inner: null }
    s.write(`GET ${path} HTTP/1.1\r\nHost: ${authority}\r\n${innerHeaders.map((h) => h + '\r\n').join('')}Connection: close\r\n\r\n`)
    return { connect, inner: await readResponse(s) }
  } finally {
    s.destroy()
  }
}

/** CONNECT as `connectHeaders`, then a WebSocket handshake inside the tunnel; the handshake's answer head. */
async function upgradeInTunnel (proxyPort: number, upstreamPort: number, connectHeaders: string[], innerHeaders: string[]): Promise<RawResponse> {
  const authority = `127.0.0.1:${upstreamPort}`
  const s = await connectRaw(proxyPort)
  try {
    s.write(`CONNECT ${authority} HTTP/1.1\r\nHost: ${authority}\r\n${connectHeaders.map((h) => h + '\r\n').join('')}\r\n`)
    const connect = await readConnectHead(s)
    if (connect.status !== 200) return connect
    s.write(`GET /socket HTTP/1.1\r\nHost: ${authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${innerHeaders.map((h) => h + '\r\n').join('')}\r\n`)
    return await readConnectHead(s)
  } finally {
    s.destroy()
  }
}

async function cookiesOf (proxy: ProxyProcess, profile: string): Promise<string[]> {
  const r = await fetch(`${proxy.url}/_session/profiles/${profile}/cookies`)
  if (r.status === 404) return []
  const json = await r.json() as { cookies: Array<{ name: string, value: string }> }
  return json.cookies.map((c) => `${c.name}=${c.value}`)
}

let upstream: Upstream
t.before(async () => { upstream = await startUpstream(echoCookies()) })
t.teardown(async () => { await upstream.close() })

t.test('main port with proxyAuth: a tunnel opened as alice stays alice', async (t) => {
  const proxy = await startProxy({
    args: ['--connect-port', String(upstream.port)],
    config: { proxyAuth: { users: { alice: { value: 'alice-pw' }, bob: { value: 'bob-pw' } } } }
  })
  t.teardown(async () => { await proxy.stop(); cleanup(proxy.dataDir) })
  const asAlice = [`Proxy-Authorization: ${basic('alice', 'alice-pw')}`]
  const seen = (): number => upstream.requests.length

  const own = await throughTunnel(proxy.port, upstream, asAlice, [], '/?set=a%3D1')
  t.equal(own.connect.status, 200)
  t.equal(own.inner?.status, 200, 'an inner request without credentials is the tunnel\'s profile')
  t.same(await cookiesOf(proxy, 'alice'), ['a=1'])

  let before = seen()
  const other = await throughTunnel(proxy.port, upstream, asAlice, [`Proxy-Authorization: ${basic('bob', 'bob-pw')}`], '/?set=b%3D1')
  t.equal(other.inner?.status, 403, 'valid credentials of another user inside alice\'s tunnel are refused')
  t.equal(other.inner?.headers['x-session-proxy-error'], 'SP_TUNNEL_PROFILE')
  t.match(other.inner?.body, /tunnel.*"alice".*"bob"/)
  t.equal(seen(), before, 'nothing went upstream')
  t.same(await cookiesOf(proxy, 'bob'), [], 'bob\'s jar was not touched')

  before = seen()
  const wrong = await throughTunnel(proxy.port, upstream, asAlice, [`Proxy-Authorization: ${basic('alice', 'guess')}`])
  t.equal(wrong.inner?.status, 407, 'an inner Proxy-Authorization is checked again: a wrong password is refused')
  t.equal(wrong.inner?.headers['x-session-proxy-error'], 'SP_PROXY_AUTH_REQUIRED')
  const unknown = await throughTunnel(proxy.port, upstream, asAlice, [`Proxy-Authorization: ${basic('mallory', '')}`])
  t.equal(unknown.inner?.status, 407, 'so is an unknown user')
  const scheme = await throughTunnel(proxy.port, upstream, asAlice, ['Proxy-Authorization: Bearer abc'])
  t.equal(scheme.inner?.status, 400, 'and a scheme other than Basic')
  t.equal(seen(), before, 'none of them went upstream')

  const same = await throughTunnel(proxy.port, upstream, asAlice, [`Proxy-Authorization: ${basic('alice', 'alice-pw')}`])
  t.equal(same.inner?.status, 200, 'repeating the tunnel\'s own credentials is fine')
  t.match(same.inner?.body, /"cookie":"a=1"/, 'with alice\'s jar')

  before = seen()
  const header = await throughTunnel(proxy.port, upstream, asAlice, ['X-Session-Profile: bob'])
  t.equal(header.inner?.status, 403, 'X-Session-Profile naming another profile inside the tunnel is refused, not silently ignored')
  t.equal(header.inner?.headers['x-session-proxy-error'], 'SP_TUNNEL_PROFILE')
  t.equal(seen(), before)
  const sameHeader = await throughTunnel(proxy.port, upstream, asAlice, ['X-Session-Profile: alice'])
  t.equal(sameHeader.inner?.status, 200, 'naming the tunnel\'s own profile is fine')

  const noAuth = await throughTunnel(proxy.port, upstream, [], [])
  t.equal(noAuth.connect.status, 407, 'a CONNECT without credentials gets no tunnel at all')
})

t.test('main port without proxyAuth: a tunnel that names a profile is that profile', async (t) => {
  const proxy = await startProxy({ args: ['--connect-port', String(upstream.port)] })
  t.teardown(async () => { await proxy.stop(); cleanup(proxy.dataDir) })
  const other = await throughTunnel(proxy.port, upstream, [`Proxy-Authorization: ${basic('alice', '')}`], [`Proxy-Authorization: ${basic('bob', '')}`], '/?set=b%3D1')
  t.equal(other.inner?.status, 403, 'the inner request cannot switch to bob')
  t.equal(other.inner?.headers['x-session-proxy-error'], 'SP_TUNNEL_PROFILE')
  t.same(await cookiesOf(proxy, 'bob'), [])
  const named = await throughTunnel(proxy.port, upstream, ['X-Session-Profile: alice'], ['X-Session-Profile: bob'])
  t.equal(named.inner?.status, 403, 'nor by X-Session-Profile when the CONNECT named alice by header')
  const free = await throughTunnel(proxy.port, upstream, [], [`Proxy-Authorization: ${basic('bob', '')}`], '/?set=b%3D2')
  t.equal(free.inner?.status, 200, 'a tunnel whose CONNECT named no profile lets each request choose (as before)')
  t.same(await cookiesOf(proxy, 'bob'), ['b=2'])
})

t.test('profile ports: a tunnel on the alice port is alice, with or without proxyAuth', async (t) => {
  const alicePort = await freePort()
  const authedPort = await freePort()
  const open = await startProxy({ args: ['--connect-port', String(upstream.port)], config: { profiles: { alice: { listen: alicePort } } } })
  const authed = await startProxy({
    args: ['--connect-port', String(upstream.port)],
    config: { profiles: { alice: { listen: authedPort } }, proxyAuth: { users: { alice: { value: 'alice-pw' }, bob: { value: 'bob-pw' } } } }
  })
  t.teardown(async () => { await open.stop(); await authed.stop(); cleanup(open.dataDir, authed.dataDir) })
  const before = upstream.requests.length

  const switched = await throughTunnel(alicePort, upstream, [], [`Proxy-Authorization: ${basic('bob', '')}`], '/?set=b%3D1')
  t.equal(switched.connect.status, 200)
  t.equal(switched.inner?.status, 403, 'an inner Proxy-Authorization user cannot make a request on the alice port bob')
  t.equal(switched.inner?.headers['x-session-proxy-error'], 'SP_TUNNEL_PROFILE')
  t.same(await cookiesOf(open, 'bob'), [], 'bob\'s jar was not touched')
  const header = await throughTunnel(alicePort, upstream, [], ['X-Session-Profile: bob'])
  t.equal(header.inner?.status, 403, 'nor can X-Session-Profile')

  const authSwitch = await throughTunnel(authedPort, upstream, [`Proxy-Authorization: ${basic('alice', 'alice-pw')}`], [`Proxy-Authorization: ${basic('bob', 'bob-pw')}`])
  t.equal(authSwitch.connect.status, 200)
  t.equal(authSwitch.inner?.status, 403, 'with proxyAuth, bob\'s valid credentials inside a tunnel on the alice port are refused too')
  const authWrong = await throughTunnel(authedPort, upstream, [`Proxy-Authorization: ${basic('alice', 'alice-pw')}`], [`Proxy-Authorization: ${basic('alice', 'guess')}`])
  t.equal(authWrong.inner?.status, 407, 'and a wrong password inside it is checked again')
  t.equal(upstream.requests.length, before, 'none of the refused requests went upstream')

  const fine = await throughTunnel(alicePort, upstream, [], [], '/?set=a%3D1')
  t.equal(fine.inner?.status, 200)
  t.same(await cookiesOf(open, 'alice'), ['a=1'], 'a plain request in the tunnel is alice')
  const noAuth = await throughTunnel(authedPort, upstream, [], [])
  t.equal(noAuth.connect.status, 407, 'the alice port asks for proxyAuth when it is configured')
})

t.test('a WebSocket handshake inside the tunnel (ws:// as undici tunnels it) follows the same rule', async (t) => {
  const ws = await startWsUpstream()
  const proxy = await startProxy({ args: ['--connect-port', String(ws.port)] })
  t.teardown(async () => { await proxy.stop(); await ws.close(); cleanup(proxy.dataDir) })
  const asAlice = [`Proxy-Authorization: ${basic('alice', '')}`]
  const refused = await upgradeInTunnel(proxy.port, ws.port, asAlice, [`Proxy-Authorization: ${basic('bob', '')}`])
  t.equal(refused.status, 403, 'a handshake naming bob inside alice\'s tunnel is refused')
  t.equal(refused.headers['x-session-proxy-error'], 'SP_TUNNEL_PROFILE')
  t.equal(ws.handshakes.length, 0, 'it never reached the upstream')
  const ok = await upgradeInTunnel(proxy.port, ws.port, asAlice, [])
  t.equal(ok.status, 101, 'a handshake without its own credentials is alice\'s')
  t.equal(ws.handshakes.length, 1)
  t.same(await cookiesOf(proxy, 'alice'), ['ws=1'], 'the cookie of the 101 went into alice\'s jar')
  t.same(await cookiesOf(proxy, 'bob'), [])
})
