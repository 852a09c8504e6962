/**
 * host-autopilot.ts: one login at a time per profile and host, the
 * generation that keeps a replayed request from logging in again, back-off
 * after a failure, and what a login resets.
 */
import t from 'tap'
import { HostAutopilot, ProfileAutopilot, type OriginAutopilot } from '../../../src/session/autopilot/host-autopilot.js'
import { LoginFailedError, type LoginResult } from '../../../src/session/autopilot/login-flow.js'
import { cookiesFromSetCookie } from '../../../src/session/autopilot/values.js'
import { springLoginPage } from '../../fixtures/spring/spring-responses.js'

/** The rule as a request to http://127.0.0.1:8080 sees it (its login runs there). */
const rule = (extra: Record<string, unknown> = {}): OriginAutopilot =>
  new HostAutopilot({ match: '127.0.0.1:8080', login: { preset: 'json-token', username: 'alice', password: { value: 'x' } }, csrf: [{ preset: 'spring' }], ...extra } as never, 'test')
    .at({ scheme: 'http', host: '127.0.0.1', port: 8080 })

t.test('concurrent callers share one login; a later caller of the same generation does not log in again', async (t) => {
  const pilot = rule()
  let runs = 0
  let release!: () => void
  const gate = new Promise<void>((resolve) => { release = resolve })
  const run = async (): Promise<LoginResult> => { runs++; await gate; return { steps: 1, token: { header: 'Authorization', value: 'Bearer T' } } }
  const g = pilot.login!.generation
  const calls = Array.from({ length: 5 }, async () => await pilot.login!.ensureLoggedIn(g, false, run))
  release()
  const results = await Promise.all(calls)
  t.equal(runs, 1, 'one run')
  t.same(results.map((r) => r.ran), [true, false, false, false, false])
  t.equal(pilot.login!.generation, g + 1)
  t.same(pilot.login!.loginToken, { header: 'Authorization', value: 'Bearer T' })
  t.same(pilot.requestHeaders('GET', () => undefined), [['authorization', 'Authorization', 'Bearer T']], 'the token goes on every request')
  t.same(await pilot.login!.ensureLoggedIn(g, false, run), { ran: false }, 'a request sent before that login just replays')
  t.equal(runs, 1)
  t.same(await pilot.login!.ensureLoggedIn(pilot.login!.generation, false, run), { ran: true }, 'a request sent after it logs in again')
  t.equal(runs, 2)
})

t.test('a login forgets the CSRF tokens of the old session', async (t) => {
  const pilot = rule()
  pilot.capture({ headers: [], setCookies: cookiesFromSetCookie(null), body: springLoginPage({ csrf: 'OLD' }), contentType: 'text/html' }, () => undefined)
  t.same(pilot.requestHeaders('POST', () => undefined).map((h) => h[2]), ['OLD'])
  await pilot.login!.ensureLoggedIn(pilot.login!.generation, false, async () => ({ steps: 1, token: null }))
  t.same(pilot.requestHeaders('POST', () => undefined), [], 'no stale token after the login')
})

t.test('a failed login backs off, doubling, and fails fast meanwhile', async (t) => {
  const pilot = rule({ loginBackoffSeconds: 30 })
  let runs = 0
  const fail = async (): Promise<LoginResult> => { runs++; throw new LoginFailedError('json-token', 'token request', 'POST http://127.0.0.1:8080/api/login answered 401, expected 200 or 201') }
  const first = await pilot.login!.ensureLoggedIn(pilot.login!.generation, false, fail).catch((e: unknown) => e)
  t.type(first, LoginFailedError)
  t.equal(pilot.login!.generation, 0, 'no new generation')
  const second = await pilot.login!.ensureLoggedIn(pilot.login!.generation, false, fail).catch((e: unknown) => e)
  t.equal(runs, 1, 'not run again during the back-off')
  t.match((second as Error).message, /^login "json-token" failed at step "token request": POST .* answered 401, expected 200 or 201 \(failed recently; next attempt in (29|30) s\)$/)
  await pilot.login!.ensureLoggedIn(pilot.login!.generation, true, fail).catch(() => {})
  t.equal(runs, 2, 'an explicit login ignores the back-off')
  const other = await pilot.login!.ensureLoggedIn(pilot.login!.generation, false, async () => { runs++; throw new Error('socket hang up') }).catch((e: unknown) => e)
  t.match((other as Error).message, /next attempt in (5[89]|60) s/, 'the back-off doubled')
})

t.test('ProfileAutopilot: the first rule matching the host applies', async (t) => {
  const p = new ProfileAutopilot([
    { match: '127.0.0.1:8080', csrf: [{ preset: 'spring' }] },
    { match: '*.example.test', csrf: [{ preset: 'tomcat' }] },
    { match: '*', sessionHeaders: ['X-Auth-Token'] }
  ], 'alice')
  t.equal(p.forHost('127.0.0.1:8080', '127.0.0.1', 8080), p.rules[0])
  t.equal(p.forHost('app.example.test', 'app.example.test', 80), p.rules[1])
  t.equal(p.forHost('127.0.0.1:8081', '127.0.0.1', 8081), p.rules[2])
  const only = new ProfileAutopilot([{ match: '127.0.0.1:8080', csrf: [{ preset: 'spring' }] }], 'bob')
  t.equal(only.forHost('127.0.0.1:8081', '127.0.0.1', 8081), null, 'no rule, no autopilot: the fast path')
})
