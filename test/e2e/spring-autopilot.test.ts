/**
 * The session autopilot end to end against Spring Security 6-shaped
 * upstreams (test/helpers/spring-like.ts: a Node server, since
 * a real Spring app cannot be built here): the real proxy process, curl and
 * Node's http client as clients, every upstream request logged.
 *
 * Each test checks what the upstream saw (the injected token, the replayed
 * body, the single login), so it fails without the feature.
 */
import t from 'tap'
import { randomBytes } from 'node:crypto'
import { adminGet, cleanup, curl, startProxy, startUpstream, viaProxy, type ProxyProcess, type Upstream } from '../helpers/proxy.js'
import { firstHeader, headerCount, startSpringLike, type LoggedRequest, type SpringLikeServer } from '../helpers/spring-like.js'
import { jsessionidCookie, tomcatSessionId, unmaskCsrfToken } from '../helpers/spring-responses.js'

interface Ev { type: string, seq: number, [k: string]: unknown }

/** Tomcat's RestCsrfPreventionFilter in front of a tiny API (no login). */
interface TomcatCsrfLike { up: Upstream, log: Array<{ method: string, path: string, csrf: string | undefined, status: number }>, rotate: () => void }
async function startTomcatCsrfLike (): Promise<TomcatCsrfLike> {
  const nonces = new Map<string, string>()
  const log: TomcatCsrfLike['log'] = []
  const up = await startUpstream((req, res) => {
    req.resume()
    req.on('end', () => {
      const headers: string[] = ['Content-Type', 'application/json']
      let id = /JSESSIONID=([0-9A-F]{32})/.exec(req.headers.cookie ?? '')?.[1]
      if (id === undefined || !nonces.has(id)) {
        id = tomcatSessionId()
        nonces.set(id, '')
        headers.push('Set-Cookie', jsessionidCookie(id))
      }
      const sent = firstHeader(req.rawHeaders, 'x-csrf-token')
      const entry = { method: req.method!, path: req.url!, csrf: sent, status: 200 }
      log.push(entry)
      if (['GET', 'HEAD', 'OPTIONS'].includes(req.method!)) {
        if (sent?.toLowerCase() === 'fetch') {
          if (nonces.get(id) === '') nonces.set(id, randomBytes(16).toString('hex').toUpperCase())
          headers.push('X-CSRF-Token', nonces.get(id)!)
        }
        res.writeHead(200, headers)
        res.end('{"items":[]}')
        return
      }
      if (nonces.get(id) === '' || sent !== nonces.get(id)) {
        entry.status = 403
        res.writeHead(403, [...headers, 'X-CSRF-Token', 'Required'])
        res.end()
        return
      }
      entry.status = 201
      res.writeHead(201, headers)
      res.end('{"created":true}')
    })
  })
  return { up, log, rotate: () => { for (const k of nonces.keys()) nonces.set(k, randomBytes(16).toString('hex').toUpperCase()) } }
}

let proxy: ProxyProcess
const servers: Record<string, SpringLikeServer> = {}
let tomcat: TomcatCsrfLike
let other: Upstream

const ENV = { ALICE_PASSWORD: 'alice-secret', BOB_PASSWORD: 'bob-secret' }
const pw = (user: string): Record<string, string> => user === 'alice' || user === 'bob' ? { env: `${user.toUpperCase()}_PASSWORD` } : { value: 'wrong-password' }
const match = (s: SpringLikeServer): string => `127.0.0.1:${s.port}`
const springForm = (s: SpringLikeServer, user = 'alice', extra: Record<string, unknown> = {}): Record<string, unknown> =>
  ({ match: match(s), login: { preset: 'spring-form', username: user, password: pw(user) }, ...extra })

t.before(async () => {
  const specs: Record<string, Parameters<typeof startSpringLike>[0]> = {
    form: {},
    cookie: { csrf: 'cookie' },
    header: { csrfResponseHeader: true },
    meta: { csrfHeaderName: 'X-APP-CSRF' },
    rot: {},
    rot2: {},
    jt: { csrf: 'none', entryPoint: 'bearer401' },
    bs: { csrf: 'none', entryPoint: 'basic401' },
    ss: { sessionCookie: 'SESSION' },
    xat: { csrf: 'none', sessionIdResolver: 'header', entryPoint: 'basic401' },
    ctx: { contextPath: '/app', csrf: 'cookie' },
    s401: { entryPoint: 'basic401' },
    s440: { entryPoint: 'status440' },
    srel: { entryPoint: 'redirect-relative' },
    sbody: { entryPoint: 'forward' },
    shdr: { entryPoint: 'header' },
    sck: { sessionCookie: 'SESSION', entryPoint: 'status440' },
    replay: { csrf: 'cookie' },
    conc: { csrf: 'cookie', loginDelayMs: 300 },
    fail: {}
  }
  for (const [name, opts] of Object.entries(specs)) servers[name] = await startSpringLike(opts)
  tomcat = await startTomcatCsrfLike()
  other = await startUpstream((req, res) => { req.resume(); req.on('end', () => { res.writeHead(200, { 'content-type': 'application/json' }); res.end('{}') }) })
  const s = servers
  const profiles: Record<string, { autopilot: Array<Record<string, unknown>> }> = {
    // presets
    sf: { autopilot: [springForm(s.form!, 'alice', { csrf: [{ preset: 'spring' }] })] },
    sfbad: { autopilot: [springForm(s.fail!, 'mallory', { loginBackoffSeconds: 30 })] },
    sfnocsrf: {
      autopilot: [{
        match: match(s.fail!),
        login: { username: 'alice', password: pw('alice'), steps: [{ name: 'post without _csrf', url: '/login', form: { username: '{{username}}', password: '{{password}}' }, expect: { status: [302], locationNot: '[?&]error' } }] }
      }]
    },
    jt: { autopilot: [{ match: match(s.jt!), login: { preset: 'json-token', username: 'alice', password: pw('alice') } }] },
    bs: { autopilot: [{ match: match(s.bs!), login: { preset: 'basic-session', username: 'alice', password: pw('alice') } }] },
    custom: {
      autopilot: [{
        match: match(s.form!),
        login: {
          username: 'bob',
          password: pw('bob'),
          steps: [
            { name: 'csrf token', url: '/api/csrf', extract: { csrf: { json: 'token' }, csrfHeader: { json: 'headerName' } } },
            { name: 'credentials', url: '/api/auth', headers: { 'X-CSRF-TOKEN': '{{csrf}}', 'X-Csrf-Header-Name': '{{ csrfHeader }}' }, json: { username: '{{username}}', password: '{{password}}' }, expect: { status: [200] }, extract: { ticket: { json: 'next.ticket' } } },
            { name: 'redeem', url: '/api/auth/redeem?ticket={{ticket}}', expect: { status: [204] } }
          ]
        }
      }]
    },
    // token sources
    ck: { autopilot: [springForm(s.cookie!, 'alice', { csrf: [{ preset: 'spring-cookie' }] })] },
    ckbob: { autopilot: [springForm(s.cookie!, 'bob', { csrf: [{ preset: 'spring-cookie' }] })] },
    hdr: { autopilot: [springForm(s.header!, 'alice', { csrf: [{ from: { header: 'X-CSRF-TOKEN' }, to: { header: 'X-CSRF-TOKEN' }, refreshPath: '/api/me' }] })] },
    tc: { autopilot: [{ match: `127.0.0.1:${tomcat.up.port}`, csrf: [{ preset: 'tomcat' }] }] },
    input: { autopilot: [springForm(s.form!, 'alice', { csrf: [{ from: { html: { input: '_csrf' } }, to: { header: 'X-CSRF-TOKEN' }, refreshPath: '/login' }] })] },
    meta: { autopilot: [springForm(s.meta!, 'alice', { csrf: [{ from: { html: { meta: '_csrf' } }, to: { header: 'X-CSRF-TOKEN' }, refreshPath: '/meta-only' }] })] },
    formfield: { autopilot: [springForm(s.form!, 'alice', { csrf: [{ from: { html: { input: '_csrf' } }, to: { form: '_csrf' }, refreshPath: '/login' }] })] },
    jsonsrc: { autopilot: [springForm(s.form!, 'alice', { csrf: [{ from: { json: 'token' }, to: { header: 'X-CSRF-TOKEN' }, refreshPath: '/api/csrf' }] })] },
    rot: { autopilot: [springForm(s.rot!, 'alice', { csrf: [{ preset: 'spring' }] })] },
    rot2: { autopilot: [springForm(s.rot2!, 'alice', { csrf: [{ preset: 'spring', refreshPath: '/meta-only' }] })] },
    // Spring conventions
    ss: { autopilot: [springForm(s.ss!, 'alice', { csrf: [{ preset: 'spring' }] })] },
    xat: { autopilot: [{ match: match(s.xat!), login: { preset: 'basic-session', username: 'alice', password: pw('alice'), loginPath: '/api/me' }, sessionHeaders: ['X-Auth-Token'] }] },
    ctx: { autopilot: [springForm(s.ctx!, 'alice', { baseUrl: `${s.ctx!.origin}/app`, csrf: [{ preset: 'spring-cookie' }] })] },
    // signals
    sig401: { autopilot: [springForm(s.s401!, 'alice', { loggedOut: { status: [401] } })] },
    sig440: { autopilot: [springForm(s.s440!, 'alice', { loggedOut: { status: [419, 440] } })] },
    sig440default: { autopilot: [springForm(s.s440!, 'alice')] },
    sigrel: { autopilot: [springForm(s.srel!, 'alice', { loggedOut: { redirect: '/login/?(\\?.*)?$' } })] },
    sigbody: { autopilot: [springForm(s.sbody!, 'alice', { loggedOut: { body: '<title>Please sign in</title>' } })] },
    sighdr: { autopilot: [springForm(s.shdr!, 'alice', { loggedOut: { header: { name: 'X-Session-Expired', pattern: '^true$' } } })] },
    sigck: { autopilot: [springForm(s.sck!, 'alice', { loggedOut: { cookieCleared: 'SESSION' } })] },
    // replay
    replay: { autopilot: [springForm(s.replay!, 'alice', { csrf: [{ preset: 'spring-cookie' }], replayMaxBytes: 4096 })] },
    conc: { autopilot: [springForm(s.conc!, 'alice', { csrf: [{ preset: 'spring-cookie' }] })] }
  }
  proxy = await startProxy({ env: ENV, config: { profiles } })
})

t.teardown(async () => {
  await proxy?.stop()
  for (const s of Object.values(servers)) await s.close()
  await tomcat?.up.close()
  await other?.close()
  if (proxy !== undefined) cleanup(proxy.dataDir)
})

const as = (profile: string): string[] => ['-x', `http://${profile}@127.0.0.1:${proxy.port}`]
async function getJson (profile: string, url: string, extra: string[] = [], input?: string): Promise<{ status: number, json: Record<string, unknown> | null, body: string }> {
  const r = await curl([...as(profile), ...extra, url], input)
  return { status: r.status, json: parse(r.stdout) as Record<string, unknown> | null, body: r.stdout }
}
/** Node's http client as the proxy's client; Content-Length is set so DELETE/OPTIONS bodies are framed. */
const call = async (profile: string, url: string, opts: { method?: string, headers?: Record<string, string>, body?: string | Buffer } = {}): ReturnType<typeof viaProxy> =>
  await viaProxy(proxy.port, url, {
    ...opts,
    headers: { 'x-session-profile': profile, ...(opts.body !== undefined ? { 'content-length': String(Buffer.byteLength(opts.body)) } : {}), ...opts.headers }
  })
function parse (text: string): unknown {
  try { return JSON.parse(text) } catch { return null }
}
async function events (profile: string): Promise<Ev[]> {
  return ((await adminGet(proxy, `/_session/profiles/${profile}/events?limit=1000`)).json as { events: Ev[] }).events
}
const types = (evs: Ev[]): string[] => evs.map((e) => e.type)
const countType = (evs: Ev[], type: string): number => evs.filter((e) => e.type === type).length
const since = (s: SpringLikeServer, mark: number): LoggedRequest[] => s.log.slice(mark)
const brief = (rs: LoggedRequest[]): string[] => rs.map((r) => `${r.method} ${r.path} ${r.status}`)
const form = (r: LoggedRequest): URLSearchParams => new URLSearchParams(r.body.toString('latin1'))
/** Whether the request carried a valid masked Spring token in `header`. */
const carriesMasked = (r: LoggedRequest, header: string): boolean => {
  const v = firstHeader(r.rawHeaders, header)
  return v !== undefined && r.expectedCsrf !== null && unmaskCsrfToken(v, r.expectedCsrf.length) === r.expectedCsrf
}

t.test('the fixture answers like Spring Security 6 (direct, no proxy)', async (t) => {
  const s = servers.fail!
  const anon = await fetch(`${s.origin}/api/me`, { redirect: 'manual' })
  t.equal(anon.status, 302)
  t.equal(anon.headers.get('location'), `${s.origin}/login`, 'the entry point redirects to an absolute /login')
  t.match(anon.headers.get('set-cookie'), /^JSESSIONID=[0-9A-F]{32}; Path=\/; HttpOnly$/, 'and starts a session for the saved request')
  t.equal(anon.headers.get('x-frame-options'), 'DENY')

  const page = await fetch(`${s.origin}/login`)
  const cookie = page.headers.get('set-cookie')!.split(';')[0]!
  const html = await page.text()
  const token = /<input name="_csrf" type="hidden" value="([^"]+)" \/>/.exec(html)?.[1]
  t.ok(token, 'the login page has the hidden _csrf input')
  const post = async (body: string, extra: Record<string, string> = {}): Promise<Response> =>
    await fetch(`${s.origin}/login`, { method: 'POST', redirect: 'manual', headers: { cookie, 'content-type': 'application/x-www-form-urlencoded', ...extra }, body })
  t.equal((await post('username=alice&password=alice-secret')).status, 403, 'no _csrf: 403')
  const raw = s.sessions.get(cookie.slice('JSESSIONID='.length))!.csrf!
  t.equal((await post(`username=alice&password=alice-secret&_csrf=${raw}`)).status, 403, 'the raw token is refused (XorCsrfTokenRequestAttributeHandler)')
  const bad = await post(`username=alice&password=nope&_csrf=${token!}`)
  t.equal(bad.status, 302)
  t.equal(bad.headers.get('location'), '/login?error')
  const ok = await post(`username=alice&password=alice-secret&_csrf=${token!}`)
  t.equal(ok.status, 302)
  t.equal(ok.headers.get('location'), '/')
  const rotated = ok.headers.get('set-cookie')!.split(';')[0]!
  t.match(rotated, /^JSESSIONID=[0-9A-F]{32}$/)
  t.not(rotated, cookie, 'the session id changed at login')
  const me = await fetch(`${s.origin}/api/me`, { headers: { cookie: rotated } })
  t.same(await me.json(), { user: 'alice', session: rotated.slice('JSESSIONID='.length), via: 'session' })
  const again = await fetch(`${s.origin}/api/me`, { redirect: 'manual', headers: { cookie } })
  t.equal(again.status, 302, 'the pre-login session id is worthless')
})

t.test('spring-form: the first request logs in through the login page and is replayed', async (t) => {
  const s = servers.form!
  const mark = s.log.length
  const r = await getJson('sf', `${s.origin}/api/me`)
  t.equal(r.status, 200, r.body.slice(0, 160))
  t.equal(r.json?.user, 'alice', 'the client only sees the answer of the replayed request')
  const seen = since(s, mark)
  t.same(brief(seen), ['GET /api/me 302', 'GET /login 200', 'POST /login 302', 'GET /api/me 200'])
  const login = seen[2]!
  t.equal(login.outcome, 'login-ok', 'Spring accepted the credentials and the _csrf')
  t.same([...form(login).keys()], ['username', 'password', '_csrf'])
  t.equal(unmaskCsrfToken(form(login).get('_csrf')!, login.expectedCsrf!.length), login.expectedCsrf, "the page's masked token was posted")
  t.equal(login.requestedSession, seen[1]!.session, 'the login POST is in the session of the login page')
  t.ok(login.session !== null && login.session !== login.requestedSession, 'Spring changed the session id at login')
  t.equal(seen[3]!.requestedSession, login.session, 'the replay uses the new session id')

  const evs = await events('sf')
  t.match(evs.find((e) => e.type === 'session.loggedOut'), { signal: 'redirect', detail: `redirect to ${s.origin}/login` })
  t.match(evs.find((e) => e.type === 'login.succeeded'), { flow: 'spring-form', steps: 2 })
  t.ok(types(evs).includes('request.replayed'))

  const mark2 = s.log.length
  const again = await getJson('sf', `${s.origin}/api/me`)
  t.equal(again.json?.session, r.json?.session, 'the next request reuses the session')
  t.same(brief(since(s, mark2)), ['GET /api/me 200'], 'with no login')
})

t.test('spring-form: JSESSIONID rotation at login is a session.rotated event with fixation: true', async (t) => {
  const evs = await events('sf')
  const started = evs.find((e) => e.type === 'login.started')
  const rotated = evs.filter((e) => e.type === 'session.rotated')
  t.ok(rotated.length >= 1, `a session.rotated event (events: ${types(evs).join(', ')})`)
  t.match(rotated[rotated.length - 1], { name: 'JSESSIONID', domain: '127.0.0.1', path: '/', fixation: true, loginSeq: started?.seq })
})

t.test('spring-form: a session ended on the server is renewed transparently', async (t) => {
  const s = servers.form!
  const before = await getJson('sf', `${s.origin}/api/me`)
  t.equal((await curl([...as('sf'), `${s.origin}/secure/invalidate`])).status, 200)
  const mark = s.log.length
  const after = await getJson('sf', `${s.origin}/api/me`)
  t.equal(after.status, 200)
  t.equal(after.json?.user, 'alice')
  t.not(after.json?.session, before.json?.session, 'in a new server session')
  t.equal(s.requests('POST', '/login').slice(-1)[0]!.outcome, 'login-ok')
  t.same(brief(since(s, mark)), ['GET /api/me 302', 'GET /login 200', 'POST /login 302', 'GET /api/me 200'])
  const logins = (await events('sf')).filter((e) => e.type === 'login.succeeded')
  t.same(logins.map((e) => e.relogin), [false, true], 'the first login is not a re-login, this one is')
})

t.test('spring preset: a POST gets the session token of the page (X-CSRF-TOKEN) without the client knowing it', async (t) => {
  const s = servers.form!
  const mark = s.log.length
  const r = await getJson('sf', `${s.origin}/api/items`, ['-H', 'content-type: application/json', '--data-binary', '{"name":"widget"}'])
  t.equal(r.status, 201, r.body.slice(0, 160))
  t.same(r.json, { user: 'alice', method: 'POST', contentType: 'application/json', bytes: 17, body: '{"name":"widget"}' })
  const posts = since(s, mark).filter((x) => x.method === 'POST')
  t.equal(posts.length, 1, 'accepted at the first attempt')
  t.ok(carriesMasked(posts[0]!, 'X-CSRF-TOKEN'), 'X-CSRF-TOKEN carried a valid masked token of the session')
  t.equal(headerCount(posts[0]!.rawHeaders, 'X-CSRF-TOKEN'), 1, 'exactly once, although / has the token in a meta tag and in a form')
})

t.test('spring preset: a POST into a dead session (403: the token died with it) logs in and is replayed byte-identical', async (t) => {
  const s = servers.form!
  await curl([...as('sf'), `${s.origin}/secure/invalidate`])
  const mark = s.log.length
  const body = '{"name":"after-invalidate","n":1}'
  const r = await getJson('sf', `${s.origin}/api/items`, ['-H', 'content-type: application/json', '--data-binary', body])
  t.equal(r.status, 201, r.body.slice(0, 160))
  const seen = since(s, mark)
  const posts = seen.filter((x) => x.path === '/api/items')
  t.same(posts.map((p) => [p.status, p.outcome]), [[403, 'csrf-missing'], [201, 'ok']], 'Spring refused the first (no token in the dead session), accepted the replay')
  t.same(posts.map((p) => p.body.toString()), [body, body], 'the same body both times')
  t.equal(seen.filter((x) => x.method === 'POST' && x.path === '/login').length, 1, 'one login')
})

t.test('spring-form: a failed login is a 502 naming the step, and backs off', async (t) => {
  const s = servers.fail!
  const mark = s.log.length
  const r = await curl([...as('sfbad'), `${s.origin}/api/me`])
  t.equal(r.status, 502)
  t.match(r.stdout, 'login "spring-form" failed at step "submit credentials": redirected to /login?error')
  const again = await curl([...as('sfbad'), `${s.origin}/api/me`])
  t.equal(again.status, 502)
  t.match(again.stdout, /failed recently; next attempt in \d+ s/)
  t.equal(since(s, mark).filter((x) => x.method === 'POST' && x.path === '/login').length, 1, 'one login attempt')
  t.match((await events('sfbad')).find((e) => e.type === 'login.failed'), { flow: 'spring-form', error: /submit credentials/ })
})

t.test('custom steps: a login POST without _csrf is refused by Spring with 403', async (t) => {
  const r = await curl([...as('sfnocsrf'), `${servers.fail!.origin}/api/me`])
  t.equal(r.status, 502)
  t.match(r.stdout, /login "custom" failed at step "post without _csrf": POST http:\/\/127\.0\.0\.1:\d+\/login answered 403, expected 302/)
})

t.test('json-token: token from POST /api/login, Bearer on later requests, re-login and replay on 401', async (t) => {
  const s = servers.jt!
  const mark = s.log.length
  const r = await getJson('jt', `${s.origin}/api/me`)
  t.equal(r.status, 200, r.body.slice(0, 160))
  t.same(r.json, { user: 'alice', session: null, via: 'bearer' })
  const seen = since(s, mark)
  t.same(brief(seen), ['GET /api/me 401', 'POST /api/login 200', 'GET /api/me 200'])
  t.equal(seen[1]!.headers['content-type'], 'application/json')
  t.same(JSON.parse(seen[1]!.body.toString()), { username: 'alice', password: 'alice-secret' })
  const token = [...s.tokens.keys()][0]!
  t.equal(seen[2]!.headers.authorization, `Bearer ${token}`)

  const mark2 = s.log.length
  await getJson('jt', `${s.origin}/api/me`)
  t.same(brief(since(s, mark2)), ['GET /api/me 200'])
  t.equal(since(s, mark2)[0]!.headers.authorization, `Bearer ${token}`, 'the same token on the next request')

  s.revokeTokens()
  const mark3 = s.log.length
  const body = JSON.stringify({ name: 'x', data: 'y'.repeat(500) })
  const post = await getJson('jt', `${s.origin}/api/items`, ['-H', 'content-type: application/json', '--data-binary', body])
  t.equal(post.status, 201, post.body.slice(0, 160))
  const after = since(s, mark3)
  t.same(brief(after), ['POST /api/items 401', 'POST /api/login 200', 'POST /api/items 201'])
  t.equal(after[0]!.headers.authorization, `Bearer ${token}`)
  t.not(after[2]!.headers.authorization, `Bearer ${token}`, 'a new token after the re-login')
  t.equal(after[2]!.headers.authorization, `Bearer ${[...s.tokens.keys()][0]!}`)
  t.same(after.filter((x) => x.path === '/api/items').map((x) => x.body.toString()), [body, body], 'the POST replayed with its body')
})

t.test('basic-session: Basic once, then the session cookie; a 401 logs in again', async (t) => {
  const s = servers.bs!
  const mark = s.log.length
  const r = await getJson('bs', `${s.origin}/api/me`)
  t.equal(r.status, 200, r.body.slice(0, 160))
  t.equal(r.json?.user, 'alice')
  t.equal(r.json?.via, 'session', 'the replay was authenticated by the session, not by Basic')
  const seen = since(s, mark)
  t.same(brief(seen), ['GET /api/me 401', 'GET / 200', 'GET /api/me 200'])
  t.equal(seen[1]!.headers.authorization, 'Basic ' + Buffer.from('alice:alice-secret').toString('base64'))
  t.notOk(seen[2]!.headers.authorization, 'no credentials on ordinary requests')
  t.match(seen[2]!.headers.cookie, /JSESSIONID=[0-9A-F]{32}/)

  s.invalidateAll()
  const mark2 = s.log.length
  const again = await getJson('bs', `${s.origin}/api/me`)
  t.equal(again.json?.user, 'alice')
  t.same(brief(since(s, mark2)), ['GET /api/me 401', 'GET / 200', 'GET /api/me 200'], 'a 401 re-logs in and replays')
})

t.test('custom steps: extract and {{var}} templating (CSRF JSON, ticket, redeem)', async (t) => {
  const s = servers.form!
  const mark = s.log.length
  const r = await getJson('custom', `${s.origin}/api/me`)
  t.equal(r.status, 200, r.body.slice(0, 160))
  t.equal(r.json?.user, 'bob')
  const seen = since(s, mark)
  t.same(brief(seen), ['GET /api/me 302', 'GET /api/csrf 200', 'POST /api/auth 200', 'GET /api/auth/redeem 204', 'GET /api/me 200'])
  const auth = seen[2]!
  t.ok(carriesMasked(auth, 'X-CSRF-TOKEN'), 'the token extracted from JSON went into a header')
  t.equal(auth.headers['x-csrf-header-name'], 'X-CSRF-TOKEN', '{{ spaced }} variable')
  t.same(JSON.parse(auth.body.toString()), { username: 'bob', password: 'bob-secret' })
  t.match(seen[3]!.url, /^\/api\/auth\/redeem\?ticket=bob\.[0-9a-f]{16}$/, 'the ticket extracted from nested JSON went into the URL')
  t.equal(seen[3]!.outcome, 'ticket-redeemed')
})

t.test('token source: XSRF-TOKEN cookie -> X-XSRF-TOKEN (spring-cookie)', async (t) => {
  const s = servers.cookie!
  await getJson('ck', `${s.origin}/api/me`)
  const mark = s.log.length
  const r = await getJson('ck', `${s.origin}/api/items`, ['-X', 'POST', '-H', 'content-type: application/json', '--data-binary', '{}'])
  t.equal(r.status, 201, r.body.slice(0, 160))
  const post = since(s, mark).find((x) => x.method === 'POST')!
  t.ok(post.expectedCsrf, 'the XSRF-TOKEN cookie was sent')
  t.equal(post.headers['x-xsrf-token'], post.expectedCsrf, 'and echoed in X-XSRF-TOKEN')
  t.equal(post.outcome, 'ok')
})

t.test('token scope: only POST/PUT/PATCH/DELETE, only the same profile and host', async (t) => {
  const s = servers.cookie!
  await getJson('ckbob', `${s.origin}/api/me`)
  const mark = s.log.length
  for (const method of ['GET', 'HEAD', 'OPTIONS']) await call('ck', `${s.origin}/api/items`, { method })
  for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
    const r = await call('ck', `${s.origin}/api/items`, { method, headers: { 'content-type': 'application/json' }, body: '{}' })
    t.equal(r.status, method === 'POST' ? 201 : 200, `${method} accepted`)
  }
  const seen = since(s, mark)
  for (const x of seen) {
    if (['GET', 'HEAD', 'OPTIONS'].includes(x.method)) t.notOk(x.headers['x-xsrf-token'], `no token on ${x.method}`)
    else t.equal(x.headers['x-xsrf-token'], x.expectedCsrf, `token on ${x.method}`)
  }
  t.equal(seen.filter((x) => x.headers['x-xsrf-token'] !== undefined).length, 4)

  const mark1 = s.log.length
  const mine = await call('ck', `${s.origin}/api/items`, { method: 'POST', headers: { 'content-type': 'application/json', 'X-XSRF-TOKEN': 'client-own' }, body: '{}' })
  t.equal(mine.status, 403, "Spring refuses the client's wrong token")
  t.same(since(s, mark1).filter((x) => x.method === 'POST').map((x) => [headerCount(x.rawHeaders, 'X-XSRF-TOKEN'), x.headers['x-xsrf-token']]), [[1, 'client-own'], [1, 'client-own']], "the client's own header wins and is not doubled, also on the retry")

  const aliceToken = seen.find((x) => x.method === 'POST')!.expectedCsrf
  const mark2 = s.log.length
  await call('ckbob', `${s.origin}/api/items`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
  const bob = since(s, mark2).find((x) => x.method === 'POST')!
  t.equal(bob.user, 'bob')
  t.ok(bob.headers['x-xsrf-token'] !== undefined && bob.headers['x-xsrf-token'] !== aliceToken, "bob's profile sends bob's token, not alice's")

  const mark3 = s.log.length
  const plain = await call('nobody', `${s.origin}/api/items`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
  t.equal(plain.status, 403, 'a profile without autopilot gets Spring\'s 403')
  t.notOk(since(s, mark3)[0]!.headers['x-xsrf-token'], 'and no token from another profile')

  const before = other.requests.length
  await call('ck', `${other.origin}/anything`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
  const elsewhere = other.requests.slice(before)[0]!
  t.match(elsewhere.headers.cookie, /XSRF-TOKEN=/, 'the jar sends the cookie to another port of the host (cookies ignore ports)')
  t.notOk(elsewhere.headers['x-xsrf-token'], 'but the token header only goes to the host of the rule')
})

t.test('token source: response header -> request header', async (t) => {
  const s = servers.header!
  const mark = s.log.length
  const r = await getJson('hdr', `${s.origin}/api/items`, ['-H', 'content-type: application/json', '--data-binary', '{"h":1}'])
  t.equal(r.status, 201, r.body.slice(0, 160))
  const post = since(s, mark).filter((x) => x.method === 'POST' && x.path === '/api/items').slice(-1)[0]!
  t.ok(carriesMasked(post, 'X-CSRF-TOKEN'), 'the token from the X-CSRF-TOKEN response header was sent back')
})

t.test('token source: Tomcat fetch protocol (X-CSRF-Token: Fetch / Required)', async (t) => {
  const log = tomcat.log
  const url = `${tomcat.up.origin}/api/items`
  const get = await call('tc', url)
  t.equal(get.status, 200)
  t.equal(log[log.length - 1]!.csrf, 'Fetch', 'a safe request asks for the nonce')
  const nonce = get.headers['x-csrf-token']
  t.match(nonce, /^[0-9A-F]{32}$/)
  const post = await call('tc', url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' })
  t.equal(post.status, 201)
  t.equal(log[log.length - 1]!.csrf, nonce, 'the POST carries the nonce')

  tomcat.rotate()
  const mark = log.length
  const retried = await call('tc', url, { method: 'DELETE' })
  t.equal(retried.status, 201, 'a 403 Required is answered by a fetch and one retry')
  t.same(log.slice(mark).map((x) => `${x.method} ${x.status} ${x.csrf === 'Fetch' ? 'Fetch' : x.csrf === nonce ? 'old' : 'new'}`), ['DELETE 403 old', 'GET 200 Fetch', 'DELETE 201 new'])
})

t.test('token source: HTML hidden input _csrf -> header', async (t) => {
  const s = servers.form!
  const mark = s.log.length
  const r = await getJson('input', `${s.origin}/api/items`, ['-H', 'content-type: application/json', '--data-binary', '{"i":1}'])
  t.equal(r.status, 201, r.body.slice(0, 160))
  const seen = since(s, mark)
  t.ok(seen.some((x) => x.method === 'GET' && x.path === '/login' && x.user === 'alice'), 'the token was read from /login (refreshPath) after the login')
  t.ok(carriesMasked(seen.filter((x) => x.path === '/api/items').slice(-1)[0]!, 'X-CSRF-TOKEN'))
})

t.test('token source: <meta name="_csrf"> sent in the header <meta name="_csrf_header"> names', async (t) => {
  const s = servers.meta!
  const mark = s.log.length
  const r = await getJson('meta', `${s.origin}/api/items`, ['-H', 'content-type: application/json', '--data-binary', '{"m":1}'])
  t.equal(r.status, 201, r.body.slice(0, 160))
  const post = since(s, mark).filter((x) => x.path === '/api/items').slice(-1)[0]!
  t.ok(carriesMasked(post, 'X-APP-CSRF'), 'the header named by _csrf_header')
  t.notOk(post.headers['x-csrf-token'], 'not the configured fallback name')
})

t.test('token source: HTML input -> form field of urlencoded POSTs', async (t) => {
  const s = servers.form!
  await getJson('formfield', `${s.origin}/api/me`)
  const mark = s.log.length
  const r = await getJson('formfield', `${s.origin}/form/items`, ['--data', 'name=widget&qty=2'])
  t.equal(r.status, 201, r.body.slice(0, 160))
  const post = since(s, mark).filter((x) => x.path === '/form/items').slice(-1)[0]!
  t.match(post.body.toString(), /^name=widget&qty=2&_csrf=[A-Za-z0-9_-]+$/, '_csrf appended to the body')
  t.equal(Number(post.headers['content-length']), post.body.length, 'Content-Length follows')
  t.equal(unmaskCsrfToken(form(post).get('_csrf')!, post.expectedCsrf!.length), post.expectedCsrf)
  t.notOk(post.headers['x-csrf-token'], 'no header')

  const mark2 = s.log.length
  const own = await getJson('formfield', `${s.origin}/form/items`, ['--data', 'name=x&_csrf=mine'])
  t.equal(own.status, 403, "the client's own _csrf is kept (and Spring refuses it)")
  t.same(since(s, mark2).filter((x) => x.path === '/form/items').map((x) => x.body.toString()), ['name=x&_csrf=mine', 'name=x&_csrf=mine'], 'not duplicated, also on the retry')

  const mark3 = s.log.length
  await getJson('formfield', `${s.origin}/api/items`, ['-H', 'content-type: application/json', '--data-binary', '{"j":1}'])
  t.same(since(s, mark3).filter((x) => x.path === '/api/items').map((x) => x.body.toString()), ['{"j":1}', '{"j":1}'], 'a JSON body is never touched')
})

t.test('token source: JSON field -> header (GET /api/csrf returning CsrfToken)', async (t) => {
  const s = servers.form!
  const mark = s.log.length
  const r = await getJson('jsonsrc', `${s.origin}/api/items`, ['-X', 'PUT', '-H', 'content-type: application/json', '--data-binary', '{"p":1}'])
  t.equal(r.status, 200, r.body.slice(0, 160))
  const seen = since(s, mark)
  t.ok(seen.some((x) => x.path === '/api/csrf'), 'the token was fetched from refreshPath')
  t.ok(carriesMasked(seen.filter((x) => x.path === '/api/items').slice(-1)[0]!, 'X-CSRF-TOKEN'))
})

t.test('CSRF rejection: exactly one refresh and one retry', async (t) => {
  const s = servers.rot!
  await getJson('rot', `${s.origin}/`)
  const mark0 = s.log.length
  t.equal((await getJson('rot', `${s.origin}/api/items`, ['-H', 'content-type: application/json', '--data-binary', '{}'])).status, 201)
  t.same(brief(since(s, mark0)), ['POST /api/items 201'], 'the token of the page the client loaded was used, no fetch needed')
  s.rotateCsrf()
  const mark = s.log.length
  const r = await getJson('rot', `${s.origin}/api/items`, ['-X', 'DELETE'])
  t.equal(r.status, 200, 'a stale token is refreshed and the request retried')
  t.same(brief(since(s, mark)), ['DELETE /api/items 403', 'GET / 200', 'DELETE /api/items 200'])

  const mark2 = s.log.length
  const denied = await getJson('rot', `${s.origin}/api/forbidden`, ['-H', 'content-type: application/json', '--data-binary', '{}'])
  t.equal(denied.status, 403, 'a 403 that persists reaches the client')
  t.same(brief(since(s, mark2)), ['POST /api/forbidden 403', 'GET / 200', 'POST /api/forbidden 403'], 'after one refresh and one retry')
  t.equal(countType(await events('rot'), 'login.started'), 1, 'a 403 is not a reason to log in')
})

t.test('spring preset: a token from a form input goes stale while the meta tag is refreshed', async (t) => {
  // refreshPath /meta-only has the token only in <meta>; the input token
  // captured earlier from / must not be sent ahead of the fresh one.
  const s = servers.rot2!
  await getJson('rot2', `${s.origin}/`)
  s.rotateCsrf()
  const mark = s.log.length
  const r = await getJson('rot2', `${s.origin}/api/items`, ['-H', 'content-type: application/json', '--data-binary', '{}'])
  t.equal(r.status, 201, 'the refreshed token is the one that counts')
  const posts = since(s, mark).filter((x) => x.path === '/api/items')
  t.equal(headerCount(posts[posts.length - 1]!.rawHeaders, 'X-CSRF-TOKEN'), 1, 'one X-CSRF-TOKEN header')
})

t.test('Spring Session: SESSION cookie (Base64 id) rotates at login and is renewed when the server forgets it', async (t) => {
  const s = servers.ss!
  const r = await getJson('ss', `${s.origin}/api/me`)
  t.equal(r.status, 200, r.body.slice(0, 160))
  t.equal(r.json?.user, 'alice')
  const cookies = (await adminGet(proxy, '/_session/profiles/ss/cookies')).json as { cookies: Array<{ name: string, value: string, path: string }> }
  const session = cookies.cookies.find((c) => c.name === 'SESSION')
  t.equal(session?.value, Buffer.from(String(r.json?.session)).toString('base64'), 'the jar holds the Base64 of the session id')
  t.notOk(cookies.cookies.some((c) => c.name === 'JSESSIONID'))
  const evs = await events('ss')
  t.match(evs.filter((e) => e.type === 'session.rotated').slice(-1)[0], { name: 'SESSION', fixation: true })

  const post = await getJson('ss', `${s.origin}/api/items`, ['-H', 'content-type: application/json', '--data-binary', '{}'])
  t.equal(post.status, 201, 'CSRF works the same')

  s.invalidateAll()
  const mark = s.log.length
  const again = await getJson('ss', `${s.origin}/api/me`)
  t.equal(again.json?.user, 'alice')
  t.not(again.json?.session, r.json?.session)
  t.same(brief(since(s, mark)), ['GET /api/me 302', 'GET /login 200', 'POST /login 302', 'GET /api/me 200'])
})

t.test('Spring Session: X-Auth-Token sessions (sessionHeaders) are captured and sent back', async (t) => {
  const s = servers.xat!
  const mark = s.log.length
  const r = await getJson('xat', `${s.origin}/api/me`)
  t.equal(r.status, 200, `the replay after the Basic login is in the session (${brief(since(s, mark)).join(', ')})`)
  t.equal(r.json?.user, 'alice')
  const login = since(s, mark).find((x) => x.headers.authorization !== undefined)
  t.ok(login?.session, 'the login created a header session')
  const mark2 = s.log.length
  const again = await getJson('xat', `${s.origin}/api/me`)
  t.equal(again.status, 200)
  const next = since(s, mark2)[0]
  t.equal(next?.headers['x-auth-token'], login?.session, 'X-Auth-Token from the login answer is sent on later requests')
  t.notOk(next?.headers.authorization, 'instead of credentials')

  s.invalidateAll()
  const mark3 = s.log.length
  const renewed = await getJson('xat', `${s.origin}/api/me`)
  t.equal(renewed.json?.user, 'alice', 'a dead X-Auth-Token session is renewed')
  const seen = since(s, mark3)
  t.equal(seen[0]?.status, 401)
  t.equal(seen[seen.length - 1]?.headers['x-auth-token'], seen[seen.length - 1]?.session ?? 'none', 'the replay carries the new X-Auth-Token')
  t.not(seen[seen.length - 1]?.headers['x-auth-token'], login?.session)
})

t.test('context path: cookies with Path=/app, paths relative to baseUrl', async (t) => {
  const s = servers.ctx!
  const mark = s.log.length
  const r = await getJson('ctx', `${s.origin}/app/api/me`)
  t.equal(r.status, 200, r.body.slice(0, 160))
  t.equal(r.json?.user, 'alice')
  t.same(since(s, mark).map((x) => `${x.method} ${x.url.split('?')[0]!} ${x.status}`), ['GET /app/api/me 302', 'GET /app/login 200', 'POST /app/login 302', 'GET /app/api/me 200'])
  const cookies = ((await adminGet(proxy, '/_session/profiles/ctx/cookies')).json as { cookies: Array<{ name: string, path: string }> }).cookies
  t.same(cookies.map((c) => `${c.name} ${c.path}`).sort(), ['JSESSIONID /app', 'XSRF-TOKEN /app'])

  const post = await getJson('ctx', `${s.origin}/app/api/items`, ['-H', 'content-type: application/json', '--data-binary', '{}'])
  t.equal(post.status, 201, post.body.slice(0, 160))
  const mark2 = s.log.length
  await getJson('ctx', `${s.origin}/elsewhere`)
  t.notMatch(since(s, mark2)[0]!.headers.cookie ?? '', /JSESSIONID/, 'the session cookie stays under /app')
})

t.test('signal: 401 (BasicAuthenticationEntryPoint)', async (t) => {
  const s = servers.s401!
  const r = await getJson('sig401', `${s.origin}/api/me`)
  t.equal(r.json?.user, 'alice')
  t.match((await events('sig401')).find((e) => e.type === 'session.loggedOut'), { signal: 'status', detail: 'status 401' })
})

t.test('signal: a configured 440', async (t) => {
  const s = servers.s440!
  const r = await getJson('sig440', `${s.origin}/api/me`)
  t.equal(r.json?.user, 'alice')
  t.match((await events('sig440')).find((e) => e.type === 'session.loggedOut'), { signal: 'status', detail: 'status 440' })
  const mark = s.log.length
  const plain = await getJson('sig440default', `${s.origin}/api/me`)
  t.equal(plain.status, 440, 'not a signal unless configured')
  t.same(brief(since(s, mark)), ['GET /api/me 440'])
})

t.test('signal: relative redirect to /login', async (t) => {
  const s = servers.srel!
  const mark = s.log.length
  const r = await getJson('sigrel', `${s.origin}/api/me`)
  t.equal(r.json?.user, 'alice')
  t.equal(since(s, mark)[0]!.status, 302)
  t.match((await events('sigrel')).find((e) => e.type === 'session.loggedOut'), { signal: 'redirect', detail: 'redirect to /login' })
})

t.test('signal: body marker on a 200 login page (useForward)', async (t) => {
  const s = servers.sbody!
  const mark = s.log.length
  const r = await getJson('sigbody', `${s.origin}/api/me`)
  t.equal(r.status, 200)
  t.equal(r.json?.user, 'alice', 'the client gets the API answer, not the login page')
  t.equal(since(s, mark)[0]!.outcome, 'entry-point')
  t.match((await events('sigbody')).find((e) => e.type === 'session.loggedOut'), { signal: 'body' })
})

t.test('signal: header marker', async (t) => {
  const s = servers.shdr!
  const r = await getJson('sighdr', `${s.origin}/api/me`)
  t.equal(r.json?.user, 'alice')
  t.match((await events('sighdr')).find((e) => e.type === 'session.loggedOut'), { signal: 'header', detail: 'X-Session-Expired: true' })
})

t.test('signal: session cookie cleared (Spring Session expiring an unknown SESSION)', async (t) => {
  const s = servers.sck!
  const login = await fetch(`${proxy.url}/_session/profiles/sigck/login`, { method: 'POST', headers: { 'x-session-proxy-admin': '1' } })
  t.equal(login.status, 200, await login.text())
  const first = await getJson('sigck', `${s.origin}/api/me`)
  t.equal(first.json?.user, 'alice', 'logged in on demand')
  s.invalidateAll()
  const mark = s.log.length
  const r = await getJson('sigck', `${s.origin}/api/me`)
  t.equal(r.status, 200)
  t.equal(r.json?.user, 'alice')
  t.match(since(s, mark)[0]!, { status: 440, outcome: 'entry-point' }, 'the status alone is not a configured signal')
  t.match((await events('sigck')).filter((e) => e.type === 'session.loggedOut').slice(-1)[0], { signal: 'cookie-deleted', detail: 'SESSION deleted' })
})

t.test('not signals: a normal 200 and a 302 elsewhere', async (t) => {
  const s = servers.form!
  const before = countType(await events('sf'), 'login.started')
  const mark = s.log.length
  const moved = await curl([...as('sf'), `${s.origin}/old-page`])
  t.equal(moved.status, 302, 'the client gets the redirect')
  const ok = await getJson('sf', `${s.origin}/api/me`)
  t.equal(ok.status, 200)
  t.same(brief(since(s, mark)), ['GET /old-page 302', 'GET /api/me 200'])
  t.equal(countType(await events('sf'), 'login.started'), before, 'no login')
})

t.test('replay: a POST under replayMaxBytes is replayed byte-identical after the re-login', async (t) => {
  const s = servers.replay!
  await getJson('replay', `${s.origin}/api/me`)
  await curl([...as('replay'), `${s.origin}/secure/invalidate`])
  const body = randomBytes(3000)
  const mark = s.log.length
  const r = await call('replay', `${s.origin}/api/items`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body })
  t.equal(r.status, 201, r.body.slice(0, 160))
  const posts = since(s, mark).filter((x) => x.path === '/api/items')
  t.same(posts.map((p) => p.status), [302, 201], 'the first was refused (logged out), the replay accepted')
  t.ok(posts.every((p) => p.body.equals(body)), 'the upstream got the same 3000 bytes twice')
  t.equal(since(s, mark).filter((x) => x.method === 'POST' && x.path === '/login').length, 1)
  t.equal(r.headers['x-session-proxy-session'], 'renewed', 'the client is told the session was renewed')
})

t.test('replay: a chunked upload (no Content-Length) is replayed too', async (t) => {
  const s = servers.replay!
  await curl([...as('replay'), `${s.origin}/secure/invalidate`])
  const body = 'line one\nline two\n'.repeat(50)
  const mark = s.log.length
  const r = await getJson('replay', `${s.origin}/api/items`, ['-H', 'Transfer-Encoding: chunked', '-H', 'content-type: text/plain', '--data-binary', '@-'], body)
  t.equal(r.status, 201, r.body.slice(0, 160))
  t.equal(r.json?.body, body)
  t.same(since(s, mark).filter((x) => x.path === '/api/items').map((x) => [x.status, x.body.toString() === body]), [[302, true], [201, true]])
})

t.test('replay: a POST over replayMaxBytes into a live session is streamed through', async (t) => {
  const s = servers.replay!
  await getJson('replay', `${s.origin}/api/me`)
  const body = randomBytes(64 * 1024)
  const mark = s.log.length
  const r = await call('replay', `${s.origin}/api/items`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body })
  t.equal(r.status, 201, r.body.slice(0, 200))
  t.equal((parse(r.body) as { bytes?: number } | null)?.bytes, body.length, 'all of it reached the application')
  const posts = since(s, mark).filter((x) => x.path === '/api/items')
  t.equal(posts.length, 1)
  t.ok(posts[0]?.body.equals(body), 'the upstream got the whole body')
  t.equal(posts[0]?.headers['x-xsrf-token'], posts[0]?.expectedCsrf ?? 'none', 'with the CSRF token')
})

t.test('replay: a POST over replayMaxBytes is not replayed; the client is told; the next request is logged in', async (t) => {
  const s = servers.replay!
  await curl([...as('replay'), `${s.origin}/secure/invalidate`])
  const body = randomBytes(64 * 1024)
  const mark = s.log.length
  const r = await call('replay', `${s.origin}/api/items`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body })
  t.equal(r.status, 302, "the original answer (Spring's redirect to the login page)")
  t.equal(r.headers.location, `${s.origin}/login`)
  t.match(r.headers['x-session-proxy-session'], /^renewed; request not replayed/)
  const posts = since(s, mark).filter((x) => x.path === '/api/items')
  t.equal(posts.length, 1, 'sent once')
  t.ok(posts[0]?.body.equals(body), 'streamed whole')
  t.equal(since(s, mark).filter((x) => x.method === 'POST' && x.path === '/login').length, 1, 'but the session was renewed')
  const mark2 = s.log.length
  const next = await getJson('replay', `${s.origin}/api/me`)
  t.equal(next.json?.user, 'alice')
  t.same(brief(since(s, mark2)), ['GET /api/me 200'], 'the next request is logged in without another login')
})

t.test('concurrent requests into a dead session share one login', async (t) => {
  const s = servers.conc!
  await getJson('conc', `${s.origin}/api/me`)
  await curl([...as('conc'), `${s.origin}/secure/invalidate`])
  const started = countType(await events('conc'), 'login.started')
  const mark = s.log.length
  const results = await Promise.all(Array.from({ length: 8 }, async (_v, i) =>
    i % 2 === 0
      ? await getJson('conc', `${s.origin}/api/me`)
      : await getJson('conc', `${s.origin}/api/items`, ['-H', 'content-type: application/json', '--data-binary', `{"i":${i}}`])))
  t.same(results.map((r) => r.json?.user), Array(8).fill('alice'), 'every request succeeded')
  t.equal(since(s, mark).filter((x) => x.method === 'POST' && x.path === '/login').length, 1, 'one login POST upstream')
  t.equal(countType(await events('conc'), 'login.started') - started, 1, 'one login.started')
})
