/**
 * readOnly (issue 13): responses never change the stored jar, but "admin
 * writes and imports still work": a cookies.txt import and a session.json
 * PUT into a readOnly profile are stored, persist across a restart, and are
 * sent on the next proxied request, whose Set-Cookie is still not stored.
 */
import t from 'tap'
import { cleanup, startProxy, startUpstream, tempDir, viaProxy, echoCookies, type ProxyProcess } from '../helpers/proxy.js'

const ADMIN = { 'x-session-proxy-admin': '1' }

async function cookiesOf (proxy: ProxyProcess, profile: string): Promise<string[]> {
  const r = await fetch(`${proxy.url}/_session/profiles/${profile}/cookies`)
  const json = await r.json() as { cookies: Array<{ name: string, value: string }> }
  return json.cookies.map((c) => `${c.name}=${c.value}`).sort()
}

t.test('cookies.txt import and session.json PUT into a readOnly profile', async (t) => {
  const upstream = await startUpstream(echoCookies())
  const dataDir = tempDir()
  const config = { profiles: { fixture: { readOnly: true } } }
  let proxy = await startProxy({ dataDir, config })
  t.teardown(async () => { await proxy.stop(); await upstream.close(); cleanup(dataDir) })
  const asFixture = { headers: { 'x-session-profile': 'fixture' } }

  const txt = '# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\timported\tfrom-file\n'
  const put = await fetch(`${proxy.url}/_session/profiles/fixture/cookies.txt`, { method: 'PUT', headers: { ...ADMIN, 'content-type': 'text/plain' }, body: txt })
  t.equal(put.status, 200, await put.text())
  t.same(await cookiesOf(proxy, 'fixture'), ['imported=from-file'], 'the import is stored')

  const session = await (await fetch(`${proxy.url}/_session/profiles/fixture/session.json`)).json() as { cookies: Array<Record<string, unknown>> }
  session.cookies.push({ ...session.cookies[0], name: 'edited', value: 'by-hand' })
  const putJson = await fetch(`${proxy.url}/_session/profiles/fixture/session.json`, { method: 'PUT', headers: { ...ADMIN, 'content-type': 'application/json' }, body: JSON.stringify(session) })
  t.equal(putJson.status, 200, 'a session.json PUT works too')
  t.same(await cookiesOf(proxy, 'fixture'), ['edited=by-hand', 'imported=from-file'])

  const r = await viaProxy(proxy.port, `${upstream.origin}/?set=imported%3Dchanged&set=new%3D1`, asFixture)
  t.match(JSON.parse(r.body).cookie, /imported=from-file/, 'the proxied request carries the imported cookie')
  t.match(JSON.parse(r.body).cookie, /edited=by-hand/)
  t.same(r.headers['set-cookie'], ['imported=changed', 'new=1'], 'the response\'s Set-Cookie reaches the client')
  t.same(await cookiesOf(proxy, 'fixture'), ['edited=by-hand', 'imported=from-file'], 'and is not stored')

  await proxy.stop()
  proxy = await startProxy({ dataDir, config })
  t.same(await cookiesOf(proxy, 'fixture'), ['edited=by-hand', 'imported=from-file'], 'the imported cookies persist across a restart')
})
