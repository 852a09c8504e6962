/**
 * host-autopilot.ts: one login at a time per profile and host, the
 * generation that keeps a replayed request from logging in again, back-off
 * after a failure, and what a login resets.
 */
import t from 'tap'
import { HostAutopilot, ProfileAutopilot, type OriginAutopilot } from '../../../src/session/autopilot/host-autopilot.js'
import { LoginFailedError, type LoginResult } from '../../../src/session/autopilot/login-flow.js'
import { cookiesFromSetCookie } from '../../../src/session/autopilot/values.js'
import { springLoginPage } from '../../helpers/spring-responses.js'

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

const http = (host: string, port: number): { scheme: 'http', host: string, port: number } => ({ scheme: 'http', host, port })
const jsonLogin = { preset: 'json-token', username: 'alice', password: { value: 'x' } }

t.test('a login needs one origin: a wildcard match without baseUrl is refused at load', async (t) => {
  for (const match of ['*', '*.example.com', '*:8080']) {
    t.throws(() => new HostAutopilot({ match, login: jsonLogin } as never, 'profiles.p.autopilot[0]'), /profiles\.p\.autopilot\[0\]: match "[^"]+" can match many hosts.*baseUrl/, match)
  }
  t.doesNotThrow(() => new HostAutopilot({ match: '*.example.com', baseUrl: 'https://login.example.com/app', login: jsonLogin } as never, 'w'), 'with a baseUrl')
  t.doesNotThrow(() => new HostAutopilot({ match: '*', sessionHeaders: ['X-Auth-Token'], csrf: [{ preset: 'spring' }] } as never, 'w'), 'no login, no credentials: wildcards are fine')
  t.throws(() => new HostAutopilot({ match: 'h', baseUrl: 'http://:80/', login: jsonLogin } as never, 'p.a[0]'), /p\.a\[0\]\.baseUrl: .* is not an http\(s\):\/\/host/)
  t.throws(() => new HostAutopilot({ match: 'h', baseUrl: 'http://h:99999/', login: jsonLogin } as never, 'p.a[0]'), /port 99999 is out of range/)
})

t.test('the login origin: the baseUrl, else the host and port the match names', async (t) => {
  const portless = new HostAutopilot({ match: 'app.example.com', login: jsonLogin } as never, 'r')
  t.equal(portless.loginOriginFor(http('app.example.com', 80)), 'http://app.example.com:80')
  t.equal(portless.loginOriginFor({ scheme: 'https', host: 'app.example.com', port: 443 }), 'https://app.example.com:443')
  t.equal(portless.loginOriginFor(http('app.example.com', 8081)), null, 'another port of the host gets no login')
  t.equal(portless.at(http('app.example.com', 8081)).login, null)
  const ported = new HostAutopilot({ match: '127.0.0.1:8080', login: jsonLogin } as never, 'r')
  t.equal(ported.loginOriginFor(http('127.0.0.1', 8080)), 'http://127.0.0.1:8080')
  const v6 = new HostAutopilot({ match: '[::1]:8080', login: jsonLogin } as never, 'r')
  t.equal(v6.loginOriginFor(http('[::1]', 8080)), 'http://[::1]:8080')
  const based = new HostAutopilot({ match: '*.example.com', baseUrl: 'HTTPS://Login.Example.com/app', login: jsonLogin } as never, 'r')
  t.equal(based.loginOriginFor(http('a.example.com', 80)), 'https://login.example.com:443', 'every host of the rule logs in at the baseUrl')
  t.equal(based.at(http('a.example.com', 80)).login, based.at(http('b.example.com', 80)).login, 'one login state for the rule')
  t.equal(new HostAutopilot({ match: '*' } as never, 'r').loginOriginFor(http('x', 80)), null, 'no login, no login origin')
})

t.test('session headers, CSRF tokens and the login token stay with their origin', async (t) => {
  const rule = new HostAutopilot({ match: '*.example.com', baseUrl: 'http://a.example.com', login: jsonLogin, sessionHeaders: ['X-Auth-Token'], csrf: [{ preset: 'tomcat' }] } as never, 'r')
  const a = rule.at(http('a.example.com', 80))
  const b = rule.at(http('b.example.com', 80))
  a.capture({ headers: ['X-Auth-Token', 'sess-a', 'X-CSRF-Token', 'NONCE-A'], setCookies: new Map(), body: null, contentType: '' }, () => undefined)
  await a.login!.ensureLoggedIn(a.login!.generation, false, async () => ({ steps: 1, token: { header: 'Authorization', value: 'Bearer T' } }))
  a.capture({ headers: ['X-Auth-Token', 'sess-a', 'X-CSRF-Token', 'NONCE-A2'], setCookies: new Map(), body: null, contentType: '' }, () => undefined)
  t.same(a.requestHeaders('POST', () => undefined).map((h) => h[1] + ': ' + h[2]), ['Authorization: Bearer T', 'X-Auth-Token: sess-a', 'X-CSRF-Token: NONCE-A2'])
  t.same(b.requestHeaders('POST', () => undefined), [], 'nothing of a.example.com goes to b.example.com, not even the login token')
  t.same(b.requestHeaders('GET', () => undefined), [['x-csrf-token', 'X-CSRF-Token', 'Fetch']], 'only the protocol word')

  await b.login!.ensureLoggedIn(b.login!.generation, true, async () => ({ steps: 1, token: null }))
  t.same(a.requestHeaders('POST', () => undefined).map((h) => h[1]), ['X-Auth-Token'], 'a new login at the login origin forgets the CSRF tokens of the hosts it renews')
  rule.clearSessionHeadersFor('http://a.example.com:80')
  t.same(a.requestHeaders('POST', () => undefined), [])
  t.equal(rule.peekSession(http('c.example.com', 80)), undefined, 'peeking creates nothing')
  t.ok(rule.peekSession(http('a.example.com', 80)))
  t.equal(rule.loginState('http://a.example.com:80'), a.login)
})

t.test('a session header value that cannot be sent is refused when captured', async (t) => {
  const here = new HostAutopilot({ match: 'h', sessionHeaders: ['X-Auth-Token'] } as never, 'r').at(http('h', 80))
  here.capture({ headers: ['X-Auth-Token', 'good'], setCookies: new Map(), body: null, contentType: '' }, () => undefined)
  const found = here.capture({ headers: ['X-Auth-Token', 'bad\u0000value'], setCookies: new Map(), body: null, contentType: '' }, () => undefined)
  t.same(found, [{ name: 'X-Auth-Token', source: 'header:X-Auth-Token', refreshed: false, rejected: 'it contains the control character 0x00' }])
  t.same(here.requestHeaders('GET', () => undefined), [['x-auth-token', 'X-Auth-Token', 'good']], 'the last good value stays')
})

t.test('origins kept per rule are bounded (maxOrigins), least recently used first', async (t) => {
  const rule = new HostAutopilot({ match: '*', sessionHeaders: ['X-Auth-Token'], maxOrigins: 2 } as never, 'r')
  const set = (host: string): void => { rule.at(http(host, 80)).capture({ headers: ['X-Auth-Token', host], setCookies: new Map(), body: null, contentType: '' }, () => undefined) }
  set('one'); set('two')
  rule.at(http('one', 80))
  set('three')
  t.ok(rule.peekSession(http('one', 80)), 'recently used: kept')
  t.equal(rule.peekSession(http('two', 80)), undefined, 'least recently used: dropped')
  t.ok(rule.peekSession(http('three', 80)))
  const logins = new HostAutopilot({ match: 'h', login: jsonLogin, maxOrigins: 1 } as never, 'r')
  const first = logins.at(http('h', 80)).login!
  const second = logins.at({ scheme: 'https', host: 'h', port: 443 }).login!
  t.not(first, second)
  t.equal(logins.loginState('http://h:80'), undefined, 'the idle login state was dropped')
})

t.test('a failure keeps its code through the back-off', async (t) => {
  const here = rule({ loginBackoffSeconds: 30 })
  await here.login!.ensureLoggedIn(0, false, async () => { throw new LoginFailedError('json-token', 'secret', 'cannot read secret file', 'SP_SECRET_UNAVAILABLE') }).catch(() => {})
  const again = await here.login!.ensureLoggedIn(0, false, async () => ({ steps: 1, token: null })).catch((e: unknown) => e)
  t.match(again, { code: 'SP_SECRET_UNAVAILABLE', message: /failed recently/ })
  t.ok(here.login!.isRunning === false)
  await here.idle()
})
