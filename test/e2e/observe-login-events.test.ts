/**
 * The session events of the autopilot (issue 4), from real traffic against a
 * Spring-like form-login app: logged-out signal, login run (steps, duration),
 * JSESSIONID rotation flagged as fixation protection, CSRF token captured and
 * refreshed, request replayed, failed login; and the login counters in the
 * metrics.
 */
import t from 'tap'
import { cleanup, curl, startProxy, type ProxyProcess } from '../helpers/proxy.js'
import { listEvents, type Ev } from '../helpers/events.js'
import { parsePrometheusStrict, sampleValue } from '../helpers/prom-parse.js'
import { startSpringLike, type SpringLikeServer } from '../helpers/spring-like.js'

let app: SpringLikeServer
let proxy: ProxyProcess

t.before(async () => {
  app = await startSpringLike({ users: { alice: 'alice-pw' }, entryPoint: 'redirect-relative', homePageForm: false })
  const rule = (password: string): Record<string, unknown> => ({
    match: `127.0.0.1:${app.port}`,
    login: { preset: 'spring-form', username: 'alice', password: { value: password } },
    csrf: [{ preset: 'spring' }],
    loginBackoffSeconds: 60
  })
  proxy = await startProxy({ config: { profiles: { app: { autopilot: [rule('alice-pw')] }, wrong: { autopilot: [rule('nope')] } } } })
})
t.teardown(async () => {
  await proxy?.stop()
  await app?.close()
  if (proxy !== undefined) cleanup(proxy.dataDir)
})

const as = (profile: string): string[] => ['-x', `http://${profile}@127.0.0.1:${proxy.port}`]
const types = (events: Ev[]): string[] => events.map((e) => e.type)

/** `wanted` appears in `list` in this order (other events may come between). */
function inOrder (list: string[], wanted: string[]): boolean {
  let i = 0
  for (const x of list) if (x === wanted[i]) i++
  return i === wanted.length
}

t.test('first request: logged out seen, login run, JSESSIONID rotated as fixation protection, request replayed', async (t) => {
  const r = await curl([...as('app'), `${app.origin}/api/me`])
  t.equal(r.status, 200, r.stdout)
  t.match(JSON.parse(r.stdout), { user: 'alice', via: 'session' })
  const { events } = await listEvents(proxy, 'app')
  t.ok(inOrder(types(events), ['session.loggedOut', 'login.started', 'cookie.set', 'cookie.changed', 'session.rotated', 'login.succeeded', 'request.replayed']), types(events).join(' '))

  const loggedOut = events.find((e) => e.type === 'session.loggedOut')!
  t.match(loggedOut, { signal: 'redirect', detail: 'redirect to /login', requestId: Number })
  const started = events.find((e) => e.type === 'login.started')!
  t.match(started, { flow: 'spring-form', trigger: 'logged-out', requestId: loggedOut.requestId })
  const succeeded = events.find((e) => e.type === 'login.succeeded')!
  t.match(succeeded, { flow: 'spring-form', steps: 2, durationMs: Number, requestId: loggedOut.requestId })
  const rotated = events.find((e) => e.type === 'session.rotated')!
  t.match(rotated, { name: 'JSESSIONID', fixation: true, loginSeq: started.seq }, 'the rotation belongs to the login run')
  t.not(rotated.from, rotated.to)
  t.match(events.find((e) => e.type === 'request.replayed'), { originalRequestId: loggedOut.requestId, reason: /login after the session was seen logged out \(redirect\)/ })
})

t.test('CSRF token captured from the page, refreshed when it changes, sent on POST', async (t) => {
  const since = (await listEvents(proxy, 'app', '?limit=0')).lastSeq
  t.equal((await curl([...as('app'), `${app.origin}/`])).status, 200)
  const post = await curl([...as('app'), '-d', 'name=x', `${app.origin}/api/items`])
  t.equal(post.status, 201, post.stdout)
  t.equal((await curl([...as('app'), `${app.origin}/api/rotate-csrf`])).status, 204)
  t.equal((await curl([...as('app'), `${app.origin}/`])).status, 200)
  const { events } = await listEvents(proxy, 'app', `?since=${since}`)
  t.match(events.filter((e) => e.type.startsWith('csrf.')), [
    { type: 'csrf.captured', name: 'X-CSRF-TOKEN', source: /html/, requestId: Number },
    { type: 'csrf.refreshed', name: 'X-CSRF-TOKEN', source: /html/, requestId: Number }
  ])
  t.same(events.filter((e) => e.type === 'session.rotated'), [], 'no login, no rotation')
})

t.test('a session ended on the server: re-login and replay of the POST, with events', async (t) => {
  const since = (await listEvents(proxy, 'app', '?limit=0')).lastSeq
  app.invalidateAll()
  const post = await curl([...as('app'), '-d', 'name=after-relogin', `${app.origin}/api/items`])
  t.equal(post.status, 201, post.stdout)
  t.match(JSON.parse(post.stdout), { user: 'alice', method: 'POST', body: 'name=after-relogin' })
  const { events } = await listEvents(proxy, 'app', `?since=${since}`)
  t.ok(inOrder(types(events), ['session.loggedOut', 'login.started', 'session.rotated', 'login.succeeded', 'request.replayed']), types(events).join(' '))
  t.match(events.find((e) => e.type === 'login.started'), { trigger: 'logged-out', relogin: true })
  t.match(events.find((e) => e.type === 'session.rotated'), { fixation: true })
  t.ok(events.some((e) => e.type === 'csrf.refreshed' || e.type === 'csrf.captured'), 'a token of the new session')
})

t.test('a failed login is an event with the step and the error', async (t) => {
  const r = await curl([...as('wrong'), `${app.origin}/api/me`])
  t.equal(r.status, 502)
  const { events } = await listEvents(proxy, 'wrong')
  t.match(events.find((e) => e.type === 'login.failed'), { flow: 'spring-form', steps: 2, durationMs: Number, error: /failed at step "submit credentials"/, requestId: Number })
  t.same(events.filter((e) => e.type === 'session.rotated'), [], 'a failed login rotates nothing')
})

t.test('logins and re-logins in the metrics', async (t) => {
  const text = await (await fetch(`${proxy.url}/_session/metrics`)).text()
  const families = parsePrometheusStrict(text)
  t.equal(sampleValue(families, 'session_proxy_logins_total', { profile: 'app', outcome: 'succeeded' }), 2)
  t.equal(sampleValue(families, 'session_proxy_logins_total', { profile: 'wrong', outcome: 'failed' }), 1)
  t.ok(sampleValue(families, 'session_proxy_relogins_total', { profile: 'app', outcome: 'succeeded' })! >= 1)
  t.ok(sampleValue(families, 'session_proxy_session_events_total', { profile: 'app', type: 'request.replayed' })! >= 2)
})

t.test('explain shows the login flow and the CSRF rules for the host', async (t) => {
  const q = new URLSearchParams({ url: `${app.origin}/api/items`, method: 'POST' })
  const r = await (await fetch(`${proxy.url}/_session/profiles/app/explain?${q.toString()}`)).json() as { auth: unknown[], csrf: unknown[], cookies: Array<{ name: string, sent: boolean }> }
  t.match(r.auth, [{ name: 'login', value: /^spring-form flow/, rule: /autopilot\[0\]\.login$/, match: `127.0.0.1:${app.port}`, applies: true }])
  t.match(r.csrf, [{ name: 'X-CSRF-TOKEN', value: /token from html/, applies: true }])
  t.match(r.cookies, [{ name: 'JSESSIONID', sent: true }])
  const get = await (await fetch(`${proxy.url}/_session/profiles/app/explain?${new URLSearchParams({ url: `${app.origin}/` }).toString()}`)).json() as { csrf: Array<{ applies: boolean, note?: string }> }
  t.match(get.csrf[0], { applies: false, note: /only on POST\/PUT\/PATCH\/DELETE, not GET/ })
})
