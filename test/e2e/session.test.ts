import t from 'tap'
import { adminGet, cleanup, curl, echoCookies, startProxy, startUpstream } from '../helpers/proxy.js'

t.test('curl keeps a session across separate runs, without a cookie file', async (t) => {
  const up = await startUpstream(echoCookies())
  const proxy = await startProxy()
  t.teardown(async () => { await proxy.stop(); await up.close(); cleanup(proxy.dataDir) })
  const x = ['-x', proxy.url]

  const first = await curl([...x, `${up.origin}/login?set=JSESSIONID%3DA1B2%3B%20Path%3D%2F%3B%20HttpOnly`])
  t.equal(first.status, 200)
  t.same(JSON.parse(first.stdout).cookie, null, 'first request carries no cookie')

  const second = await curl([...x, `${up.origin}/api/whoami`])
  t.equal(JSON.parse(second.stdout).cookie, 'JSESSIONID=A1B2', 'a later, separate curl run is in the session')

  const rotated = await curl([...x, `${up.origin}/login?set=JSESSIONID%3DC3D4%3B%20Path%3D%2F`])
  t.equal(JSON.parse(rotated.stdout).cookie, 'JSESSIONID=A1B2')
  t.equal(JSON.parse((await curl([...x, `${up.origin}/x`])).stdout).cookie, 'JSESSIONID=C3D4', 'a rotated session id replaces the old one')

  const cookies = await adminGet(proxy, '/_session/profiles/default/cookies')
  t.equal(cookies.status, 200)
  t.match(cookies.json, { profile: 'default', cookies: [{ name: 'JSESSIONID', value: 'C3D4', domain: '127.0.0.1', path: '/', secure: false, hostOnly: true, expires: null }] })
})

t.test('profiles are isolated: proxy user, --proxy-user, X-Session-Profile, default', async (t) => {
  const up = await startUpstream(echoCookies())
  const proxy = await startProxy()
  t.teardown(async () => { await proxy.stop(); await up.close(); cleanup(proxy.dataDir) })
  const host = new URL(proxy.url).host

  await curl(['-x', `http://alice@${host}`, `${up.origin}/?set=sid%3Dalice`])
  await curl(['-x', proxy.url, '--proxy-user', 'bob:', `${up.origin}/?set=sid%3Dbob`])
  await curl(['-x', proxy.url, '-H', 'X-Session-Profile: carol', `${up.origin}/?set=sid%3Dcarol`])

  t.equal(JSON.parse((await curl(['-x', `http://alice@${host}`, `${up.origin}/`])).stdout).cookie, 'sid=alice')
  t.equal(JSON.parse((await curl(['-x', proxy.url, '--proxy-user', 'bob:', `${up.origin}/`])).stdout).cookie, 'sid=bob')
  t.equal(JSON.parse((await curl(['-x', proxy.url, '-H', 'X-Session-Profile: carol', `${up.origin}/`])).stdout).cookie, 'sid=carol')
  t.equal(JSON.parse((await curl(['-x', proxy.url, `${up.origin}/`])).stdout).cookie, null, 'the default profile saw none of them')
  t.equal(JSON.parse((await curl(['-x', `http://alice@${host}`, '-H', 'X-Session-Profile: bob', `${up.origin}/`])).stdout).cookie, 'sid=alice', 'the proxy user wins over the header')

  const last = up.requests[up.requests.length - 1]!
  t.notOk(last.headers['proxy-authorization'], 'Proxy-Authorization is not forwarded')
  t.notOk(last.headers['x-session-profile'], 'X-Session-Profile is not forwarded')

  const list = await adminGet(proxy, '/_session/profiles')
  const loaded = { loaded: true, declared: false }
  t.same(list.json, { profiles: [{ name: 'alice', cookies: 1, ...loaded }, { name: 'bob', cookies: 1, ...loaded }, { name: 'carol', cookies: 1, ...loaded }, { name: 'default', cookies: 0, ...loaded }] })
})

t.test('RFC 6265 behaviour through the proxy', async (t) => {
  const up = await startUpstream(echoCookies())
  const proxy = await startProxy({ args: ['--connect-to', 'app.example.test:80:127.0.0.1:' + String(up.port), '--connect-to', 'api.example.test:80:127.0.0.1:' + String(up.port)] })
  t.teardown(async () => { await proxy.stop(); await up.close(); cleanup(proxy.dataDir) })
  const get = async (url: string, extra: string[] = []): Promise<string | null> => (JSON.parse((await curl(['-x', proxy.url, ...extra, url])).stdout) as { cookie: string | null }).cookie
  const set = async (url: string, cookie: string): Promise<void> => { await curl(['-x', proxy.url, `${url}${url.includes('?') ? '&' : '?'}set=${encodeURIComponent(cookie)}`]) }

  await set('http://app.example.test/app/login', 'ctx=1; Path=/app')
  t.equal(await get('http://app.example.test/app/data'), 'ctx=1', 'path-scoped cookie sent under its path')
  t.equal(await get('http://app.example.test/other'), null, 'and not outside it')

  await set('http://app.example.test/', 'sec=1; Secure; Path=/')
  t.equal(await get('http://app.example.test/'), null, 'a Secure cookie is never sent over http')

  await set('http://app.example.test/', 'wide=1; Domain=example.test; Path=/')
  t.equal(await get('http://api.example.test/'), 'wide=1', 'a Domain cookie reaches sibling hosts')
  await set('http://app.example.test/', 'narrow=1; Path=/')
  t.equal(await get('http://api.example.test/'), 'wide=1', 'a host-only cookie does not')

  await set('http://app.example.test/', 'gone=1; Path=/')
  t.match(await get('http://app.example.test/'), /gone=1/)
  await set('http://app.example.test/', 'gone=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT')
  t.notMatch((await get('http://app.example.test/')) ?? '', /gone=/, 'a past Expires deletes the cookie')
  await set('http://app.example.test/', 'short=1; Path=/; Max-Age=1')
  t.match(await get('http://app.example.test/'), /short=1/)
  await new Promise((resolve) => setTimeout(resolve, 1100))
  t.notMatch((await get('http://app.example.test/')) ?? '', /short=1/, 'Max-Age expiry is honoured')

  t.equal(await get('http://app.example.test/', ['-H', 'Cookie: narrow=mine; extra=2']), 'narrow=mine; extra=2; wide=1', "the client's own cookie wins for the same name, others are merged")

  const reqs = up.requests.filter((r) => r.headers.host === 'app.example.test')
  t.ok(reqs.length > 0, 'Host keeps the requested name under --connect-to')
})

t.test('non-ASCII cookie bytes pass through unchanged', async (t) => {
  const value = Buffer.from('caf\u00e9-\u65e5\u672c', 'utf8').toString('latin1')
  let seen: string | undefined
  const up = await startUpstream((req, res) => {
    seen = req.headers.cookie
    res.writeHead(200, ['set-cookie', `u=${value}; Path=/`, 'x-raw', value])
    res.end('ok')
  })
  const proxy = await startProxy()
  t.teardown(async () => { await proxy.stop(); await up.close(); cleanup(proxy.dataDir) })
  const first = await curl(['-x', proxy.url, '-D', '-', '-o', '/dev/null', `${up.origin}/`])
  t.match(Buffer.from(first.stdout, 'utf8').toString('utf8'), /x-raw: caf\u00e9-\u65e5\u672c/, 'response header bytes unchanged')
  await curl(['-x', proxy.url, `${up.origin}/`])
  t.equal(Buffer.from(seen ?? '', 'latin1').toString('utf8'), 'u=caf\u00e9-\u65e5\u672c', 'the stored cookie goes back byte for byte')
})
