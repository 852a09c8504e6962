/**
 * GET /_session/profiles/{p}/exchanges: captured exchanges joined to the
 * events they caused, with the marks the page shows. Real proxy, the
 * Spring-like form-login app, curl through the proxy.
 */
import t from 'tap'
import { adminGet, cleanup, curl, startProxy, startUpstream, type ProxyProcess, type Upstream } from '../helpers/proxy.js'
import { startSpringLike, type SpringLikeServer } from '../helpers/spring-like.js'

interface Summary { requestId: number, method: string, url: string, status: number, profile: string, marks: string[], events: Array<{ type: string }>, error: unknown }
interface Detail extends Summary { requestHeaders: Array<[string, string]>, responseHeaders: Array<[string, string]>, redacted: boolean }

let app: SpringLikeServer
let plain: Upstream
let proxy: ProxyProcess

t.before(async () => {
  app = await startSpringLike({ users: { alice: 'alice-pw' }, entryPoint: 'redirect-relative', homePageForm: false })
  plain = await startUpstream((req, res) => {
    res.writeHead(200, req.url === '/set' ? { 'set-cookie': 'k=v; Path=/' } : {})
    res.end('ok')
  })
  proxy = await startProxy({
    config: {
      profiles: {
        app: {
          autopilot: [{ match: `127.0.0.1:${app.port}`, login: { preset: 'spring-form', username: 'alice', password: { value: 'alice-pw' } }, csrf: [{ preset: 'spring' }] }],
          capture: { enabled: true }
        },
        plain: { capture: { enabled: true } }
      }
    }
  })
})
t.teardown(async () => {
  await proxy?.stop()
  await app?.close()
  await plain?.close()
  if (proxy !== undefined) cleanup(proxy.dataDir)
})

const list = async (p: string): Promise<Summary[]> => {
  const r = await adminGet(proxy, `/_session/profiles/${p}/exchanges`)
  t.equal(r.status, 200, r.body)
  return (r.json as { exchanges: Summary[] }).exchanges
}

t.test('a renewed request: logged out, renewed, replayed, with the events and the URL', async (t) => {
  const as = ['-x', `http://app@127.0.0.1:${proxy.port}`]
  t.equal((await curl([...as, `${app.origin}/api/me`])).status, 200)
  t.equal((await curl([...as, `${app.origin}/api/me`])).status, 200)
  const [second, first] = await list('app')
  // Captured as last sent: the replay, with the new session.
  t.same(first!.marks, ['sent-with-session', 'logged-out', 'renewed', 'replayed'])
  t.same(second!.marks, ['sent-with-session'], 'the second rode on it')
  t.match(first, { method: 'GET', url: `${app.origin}/api/me`, status: 200, profile: 'app', error: null })
  t.same(first!.events.map((e) => e.type).filter((x) => !x.startsWith('cookie.') && x !== 'session.rotated' && !x.startsWith('csrf.')), ['session.loggedOut', 'login.started', 'login.succeeded', 'request.replayed'])

  const d = await adminGet(proxy, `/_session/profiles/app/exchanges/${first!.requestId}`)
  t.equal(d.status, 200)
  const detail = d.json as Detail
  t.equal(detail.redacted, true)
  t.ok(detail.responseHeaders.some(([n, v]) => n === 'x-session-proxy-session' && v === 'renewed'))
  const cookie = detail.requestHeaders.find(([n]) => n.toLowerCase() === 'cookie')
  t.match(cookie?.[1], /^JSESSIONID=<redacted>/)

  const events = (await adminGet(proxy, '/_session/profiles/app/events?limit=100')).json as { events: Array<{ type: string, requestId: number | null, url?: string }> }
  for (const e of events.events.filter((e) => e.requestId === first!.requestId)) {
    t.match(e.url, new RegExp(`^${app.origin}/(api/me|login)$`), `${e.type} has the URL of its request`)
  }
})

t.test('a CSRF retry is replayed without a renewal', async (t) => {
  const as = ['-x', `http://app@127.0.0.1:${proxy.port}`]
  await curl([...as, `${app.origin}/`])
  await curl([...as, `${app.origin}/api/rotate-csrf`])
  t.equal((await curl([...as, '-d', 'name=x', `${app.origin}/api/items`])).status, 201)
  const [post] = await list('app')
  t.equal(post!.method, 'POST')
  t.same(post!.marks, ['sent-with-session', 'replayed'])
})

t.test('a plain profile: no session, then a session', async (t) => {
  const as = ['-x', `http://plain@127.0.0.1:${proxy.port}`]
  await curl([...as, `${plain.origin}/set`])
  await curl([...as, `${plain.origin}/again`])
  const [again, set] = await list('plain')
  t.same(set!.marks, [])
  t.same(again!.marks, ['sent-with-session'])
  t.same(set!.events.map((e) => e.type), ['cookie.set'])
  const events = (await adminGet(proxy, '/_session/profiles/plain/events')).json as { events: Array<{ type: string, url?: string }> }
  t.equal(events.events.find((e) => e.type === 'cookie.set')?.url, `${plain.origin}/set`, 'a cookie event has the URL that set it')
})

t.test('refusals', async (t) => {
  const missing = await adminGet(proxy, '/_session/profiles/app/exchanges/999999')
  t.equal(missing.status, 404)
  t.match(missing.json, { error: 'SP_EXCHANGE_NOT_FOUND' })
  const bad = await adminGet(proxy, '/_session/profiles/app/exchanges/abc')
  t.equal(bad.status, 400)
  t.match(bad.json, { error: 'SP_BAD_QUERY' })
  t.equal((await adminGet(proxy, '/_session/profiles/nobody/exchanges')).status, 404)
  const off = await fetch(`${proxy.url}/_session/profiles/plain/capture`, { method: 'PUT', headers: { 'x-session-proxy-admin': '1', 'content-type': 'application/json' }, body: '{"enabled":false}' })
  t.equal(off.status, 200)
  t.match((await adminGet(proxy, '/_session/profiles/plain/exchanges')).json, { profile: 'plain', capture: false })
})
