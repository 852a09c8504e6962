/**
 * login-flow.ts: each preset's steps and a custom flow, run against a fake
 * StepSender that answers like Spring Security 6 (and Tomcat for
 * tomcat-form); resolveStepUrl.
 */
import t from 'tap'
import { LoginFailedError, LoginFlow, resolveStepUrl, toStepResponse, type StepResponse, type StepSender } from '../../../src/session/autopilot/login-flow.js'
import type { LoginConfig } from '../../../src/config/autopilot-schema.js'
import { ConfigError, SessionProxyError } from '../../../src/errors.js'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { HTML, JSON_TYPE, jsessionidCookie, maskCsrfToken, rawCsrfToken, springErrorJson, springLoginPage, tomcatSessionId, unmaskCsrfToken, xsrfCookie } from '../../helpers/spring-responses.js'

interface Sent { method: string, url: string, headers: Array<[string, string]>, body: string | undefined }

/** A StepSender answering from a list of handlers, one per expected step. */
function fakeSender (answers: Array<(req: Sent) => StepResponse>): { send: StepSender, sent: Sent[] } {
  const sent: Sent[] = []
  const send: StepSender = async (req) => {
    const s: Sent = { method: req.method, url: req.url, headers: req.headers, body: req.body?.toString('utf8') }
    sent.push(s)
    const answer = answers[sent.length - 1]
    if (answer === undefined) throw new Error(`unexpected step ${sent.length}: ${req.method} ${req.url}`)
    return answer(s)
  }
  return { send, sent }
}

const respond = (status: number, headers: Array<[string, string]>, body = '', setCookies: string[] | null = null): StepResponse =>
  toStepResponse(status, headers.flat(), setCookies, body)
const header = (s: Sent, name: string): string | undefined => s.headers.find(([n]) => n.toLowerCase() === name.toLowerCase())?.[1]
const noJar = (): undefined => undefined
const BASE = 'http://127.0.0.1:8080'

/** Spring's login page and POST /login, checking the _csrf parameter like CsrfFilter. */
function springLogin (opts: { password?: string, csrf?: boolean } = {}): { send: StepSender, sent: Sent[], raw: string } {
  const raw = rawCsrfToken()
  const before = tomcatSessionId()
  const { send, sent } = fakeSender([
    () => respond(200, [['Content-Type', HTML]], springLoginPage({ csrf: opts.csrf === false ? null : maskCsrfToken(raw) }), [jsessionidCookie(before)]),
    (req) => {
      const form = new URLSearchParams(req.body)
      if (opts.csrf !== false && unmaskCsrfToken(form.get('_csrf') ?? '', raw.length) !== raw) return respond(403, [['Content-Type', JSON_TYPE]], springErrorJson(403, 'Forbidden', '/login'))
      if (form.get('username') !== 'alice' || form.get('password') !== (opts.password ?? 'alice-secret')) return respond(302, [['Location', '/login?error']])
      return respond(302, [['Location', '/']], '', [jsessionidCookie(tomcatSessionId())])
    }
  ])
  return { send, sent, raw }
}

t.test('spring-form: GET the login page, POST username, password and the page\'s _csrf', async (t) => {
  const flow = new LoginFlow({ preset: 'spring-form', username: 'alice', password: { value: 'alice-secret' } }, 'test')
  t.equal(flow.name, 'spring-form')
  t.equal(flow.stepCount, 2)
  const { send, sent } = springLogin()
  const result = await flow.run(BASE, `${BASE}/api/me`, send, noJar)
  t.same(result, { steps: 2, token: null }, 'a cookie session: no token')
  t.equal(sent[0]!.method, 'GET')
  t.equal(sent[0]!.url, `${BASE}/login`)
  t.equal(sent[1]!.method, 'POST')
  t.equal(sent[1]!.url, `${BASE}/login`)
  t.equal(header(sent[1]!, 'content-type'), 'application/x-www-form-urlencoded')
  const form = new URLSearchParams(sent[1]!.body)
  t.same([...form.keys()], ['username', 'password', '_csrf'])
  t.equal(form.get('username'), 'alice')
  t.equal(form.get('password'), 'alice-secret')
  t.match(form.get('_csrf'), /^[A-Za-z0-9_-]{96}$/, 'the masked token of the page, as is')
})

t.test('spring-form: bad credentials -> /login?error fails at "submit credentials"', async (t) => {
  const flow = new LoginFlow({ preset: 'spring-form', username: 'alice', password: { value: 'wrong' } }, 'test')
  const err = await flow.run(BASE, BASE + '/', springLogin().send, noJar).catch((e: unknown) => e)
  t.type(err, LoginFailedError)
  t.equal((err as LoginFailedError).step, 'submit credentials')
  t.equal((err as LoginFailedError).statusCode, 502)
  t.match((err as Error).message, 'login "spring-form" failed at step "submit credentials": redirected to /login?error')
  t.notMatch((err as Error).message, /wrong/, 'the password is not in the message')
})

t.test('spring-form: a 403 (CSRF refused) fails with the status', async (t) => {
  // The page has no token (csrf disabled) but the server wants one.
  const raw = rawCsrfToken()
  const { send, sent } = fakeSender([
    () => respond(200, [['Content-Type', HTML]], springLoginPage({ csrf: null })),
    (req) => new URLSearchParams(req.body).has('_csrf') ? respond(302, [['Location', '/']]) : respond(403, [['Content-Type', JSON_TYPE]], springErrorJson(403, 'Forbidden', '/login'))
  ])
  const flow = new LoginFlow({ preset: 'spring-form', username: 'alice', password: { value: 'alice-secret' } }, 'test')
  const err = await flow.run(BASE, BASE, send, noJar).catch((e: unknown) => e)
  t.match((err as Error).message, `failed at step "submit credentials": POST ${BASE}/login answered 403, expected 301 or 302 or 303`)
  t.notOk(new URLSearchParams(sent[1]!.body).has('_csrf'), 'no token on the page: _csrf is left out, not sent empty')
  t.ok(raw)
})

t.test('spring-form: csrf disabled works without _csrf', async (t) => {
  const flow = new LoginFlow({ preset: 'spring-form', username: 'alice', password: { value: 'alice-secret' } }, 'test')
  const { send, sent } = springLogin({ csrf: false })
  t.same(await flow.run(BASE, BASE, send, noJar), { steps: 2, token: null })
  t.equal(sent[1]!.body, 'username=alice&password=alice-secret')
})

t.test('spring-form: loginPath, field names and a context path', async (t) => {
  const flow = new LoginFlow({ preset: 'spring-form', username: 'a@example.com', password: { value: 'p&w=1' }, loginPath: '/auth/signin', usernameField: 'email', passwordField: 'pass' }, 'test')
  const { send, sent } = fakeSender([
    () => respond(200, [['Content-Type', HTML]], '<form><input type="hidden" name="_csrf" value="T"/></form>'),
    () => respond(302, [['Location', 'http://127.0.0.1:8080/app/']])
  ])
  await flow.run(`${BASE}/app`, `${BASE}/app/x`, send, noJar)
  t.same(sent.map((s) => s.url), [`${BASE}/app/auth/signin`, `${BASE}/app/auth/signin`], 'paths hang off the base URL, context path kept')
  t.equal(sent[1]!.body, 'email=a%40example.com&pass=p%26w%3D1&_csrf=T', 'values are form-encoded')
})

t.test('tomcat-form: protected page, then j_security_check relative to the base URL', async (t) => {
  const flow = new LoginFlow({ preset: 'tomcat-form', username: 'alice', password: { value: 's3cret' } }, 'test')
  const { send, sent } = fakeSender([
    () => respond(200, [['Content-Type', 'text/html']], '<form method="POST" action="j_security_check"><input name="j_username"><input name="j_password" type="password"></form>', [jsessionidCookie(tomcatSessionId(), '/app')]),
    () => respond(303, [['Location', '/app/api/whoami']], '', [jsessionidCookie(tomcatSessionId(), '/app')])
  ])
  t.same(await flow.run(`${BASE}/app`, `${BASE}/app/api/whoami`, send, noJar), { steps: 2, token: null })
  t.equal(sent[0]!.method, 'GET')
  t.equal(sent[0]!.url, `${BASE}/app/api/whoami`, 'the request URL (Tomcat needs a saved request)')
  t.equal(sent[1]!.method, 'POST')
  t.equal(sent[1]!.url, `${BASE}/app/j_security_check`)
  t.equal(sent[1]!.body, 'j_username=alice&j_password=s3cret')

  const started = new LoginFlow({ preset: 'tomcat-form', username: 'alice', password: { value: 's3cret' }, startPath: '/secure/' }, 'test')
  const other = fakeSender([() => respond(200, [], '<form action="j_security_check">'), () => respond(302, [['Location', '/app/secure/']])])
  await started.run(`${BASE}/app`, `${BASE}/app/api/items`, other.send, noJar)
  t.equal(other.sent[0]!.url, `${BASE}/app/secure/`, 'startPath instead of the request URL')

  const failed = fakeSender([() => respond(200, [], '<form action="j_security_check">'), () => respond(200, [], '<form action="j_security_check"> bad')])
  const err = await flow.run(`${BASE}/app`, `${BASE}/app/api/whoami`, failed.send, noJar).catch((e: unknown) => e)
  t.match((err as Error).message, 'failed at step "j_security_check": POST http://127.0.0.1:8080/app/j_security_check answered 200, expected 301 or 302 or 303')
})

t.test('json-token: POST /api/login JSON, token from the body, sent as Bearer', async (t) => {
  const flow = new LoginFlow({ preset: 'json-token', username: 'alice', password: { value: 'alice-secret' } }, 'test')
  const { send, sent } = fakeSender([() => respond(200, [['Content-Type', JSON_TYPE]], JSON.stringify({ token: 'eyJhbGciOiJIUzI1NiJ9.e30.sig', tokenType: 'Bearer', expiresIn: 3600 }))])
  const result = await flow.run(BASE, BASE + '/api/me', send, noJar)
  t.same(result, { steps: 1, token: { header: 'Authorization', value: 'Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig' } })
  t.equal(sent[0]!.method, 'POST')
  t.equal(sent[0]!.url, `${BASE}/api/login`)
  t.equal(header(sent[0]!, 'content-type'), 'application/json')
  t.same(JSON.parse(sent[0]!.body!), { username: 'alice', password: 'alice-secret' })

  const nested = new LoginFlow({ preset: 'json-token', username: 'alice', password: { value: 'x' }, loginPath: '/auth/token', tokenField: 'data.accessToken', usernameField: 'login' }, 'test')
  const n = fakeSender([() => respond(201, [['Content-Type', JSON_TYPE]], '{"data":{"accessToken":"AT"}}')])
  t.same((await nested.run(BASE, BASE, n.send, noJar)).token, { header: 'Authorization', value: 'Bearer AT' })
  t.same(JSON.parse(n.sent[0]!.body!), { login: 'alice', password: 'x' })
  t.equal(n.sent[0]!.url, `${BASE}/auth/token`)

  const own = new LoginFlow({ preset: 'json-token', username: 'alice', password: { value: 'x' }, token: { from: { header: 'X-Auth-Token' }, header: 'X-Auth-Token' } }, 'test')
  const o = fakeSender([() => respond(200, [['X-Auth-Token', 'sess-1']], '{}')])
  t.same((await own.run(BASE, BASE, o.send, noJar)).token, { header: 'X-Auth-Token', value: 'sess-1' }, 'a configured token, no Bearer prefix for another header')

  const unauthorized = fakeSender([() => respond(401, [['Content-Type', JSON_TYPE]], springErrorJson(401, 'Unauthorized', '/api/login'))])
  t.match(((await flow.run(BASE, BASE, unauthorized.send, noJar).catch((e: unknown) => e)) as Error).message, 'failed at step "token request": POST http://127.0.0.1:8080/api/login answered 401, expected 200 or 201')
  const noToken = fakeSender([() => respond(200, [['Content-Type', JSON_TYPE]], '{"status":"ok"}')])
  const err = await flow.run(BASE, BASE, noToken.send, noJar).catch((e: unknown) => e)
  t.equal((err as LoginFailedError).step, 'token')
  t.match((err as Error).message, 'the last response has no token at {"json":"token"}')
})

t.test('basic-session: one GET with Basic credentials', async (t) => {
  const flow = new LoginFlow({ preset: 'basic-session', username: 'alice', password: { value: 'pä:ss' } }, 'test')
  const { send, sent } = fakeSender([() => respond(200, [['Content-Type', HTML]], 'ok', [jsessionidCookie(tomcatSessionId())])])
  t.same(await flow.run(BASE, BASE + '/api/me', send, noJar), { steps: 1, token: null })
  t.equal(sent[0]!.method, 'GET')
  t.equal(sent[0]!.url, `${BASE}/`)
  t.equal(header(sent[0]!, 'authorization'), 'Basic ' + Buffer.from('alice:pä:ss', 'utf8').toString('base64'), 'UTF-8 credentials, colon in the password kept')
  t.equal(sent[0]!.body, undefined)

  const withPath = new LoginFlow({ preset: 'basic-session', username: 'alice', password: { value: 'x' }, loginPath: '/api/session' }, 'test')
  const w = fakeSender([() => respond(204, [['X-Auth-Token', 'abc']])])
  await withPath.run(BASE, BASE, w.send, noJar)
  t.equal(w.sent[0]!.url, `${BASE}/api/session`)

  const refused = fakeSender([() => respond(401, [['WWW-Authenticate', 'Basic realm="Realm"']])])
  const err = await flow.run(BASE, BASE, refused.send, noJar).catch((e: unknown) => e)
  t.match((err as Error).message, 'failed at step "basic login": GET http://127.0.0.1:8080/ answered 401')
})

t.test('custom steps: extract from JSON, cookie and header; {{var}} in URL, headers, form and JSON', async (t) => {
  const config: LoginConfig = {
    username: 'alice',
    password: { value: 'alice-secret' },
    steps: [
      { name: 'csrf', url: '/api/csrf', extract: { csrf: { json: 'token' }, xsrf: { cookie: 'XSRF-TOKEN' } } },
      {
        name: 'credentials',
        url: '/api/auth',
        headers: { 'X-CSRF-TOKEN': '{{csrf}}', 'X-XSRF-TOKEN': '{{ xsrf }}' },
        json: { username: '{{username}}', password: '{{password}}', meta: { tags: ['{{csrf}}', 7, true, null] } },
        expect: { status: [200], bodyNot: '"status":"FAILED"' },
        extract: { ticket: { json: 'next.ticket' }, trace: { header: 'X-Trace' } }
      },
      { name: 'redeem', url: '/api/auth/redeem?ticket={{ticket}}&t={{trace}}&missing={{nope}}', expect: { status: [204] } },
      { name: 'form step', url: 'http://127.0.0.1:9999/absolute', form: { who: '{{username}}', optional: '{{nope}}', fixed: 'yes' }, extract: { page: { html: { input: 'next' } } } },
      { name: 'last', method: 'PUT', url: '/done/{{page}}' }
    ]
  }
  const flow = new LoginFlow(config, 'test')
  t.equal(flow.name, 'custom')
  t.equal(flow.stepCount, 5)
  const xsrf = rawCsrfToken()
  const { send, sent } = fakeSender([
    () => respond(200, [['Content-Type', JSON_TYPE]], '{"parameterName":"_csrf","token":"MASKED","headerName":"X-CSRF-TOKEN"}', [xsrfCookie(xsrf)]),
    () => respond(200, [['Content-Type', JSON_TYPE], ['X-Trace', 'tr-1']], '{"status":"PENDING","next":{"ticket":"alice.42"}}'),
    () => respond(204, []),
    () => respond(200, [['Content-Type', HTML]], '<input name="next" value="p/2">'),
    () => respond(200, [])
  ])
  t.same(await flow.run(BASE, BASE, send, noJar), { steps: 5, token: null })
  t.same(sent.map((s) => `${s.method} ${s.url}`), [
    `GET ${BASE}/api/csrf`,
    `POST ${BASE}/api/auth`,
    `GET ${BASE}/api/auth/redeem?ticket=alice.42&t=tr-1&missing=`,
    'POST http://127.0.0.1:9999/absolute',
    `PUT ${BASE}/done/p/2`
  ], 'method defaults to POST with a body, GET without; an explicit method wins')
  t.equal(header(sent[1]!, 'X-CSRF-TOKEN'), 'MASKED', 'a JSON field')
  t.equal(header(sent[1]!, 'X-XSRF-TOKEN'), xsrf, 'a cookie of the response, {{ spaced }} name')
  t.same(JSON.parse(sent[1]!.body!), { username: 'alice', password: 'alice-secret', meta: { tags: ['MASKED', 7, true, null] } }, 'templating inside nested JSON; other types kept')
  t.equal(sent[3]!.body, 'who=alice&fixed=yes', 'an empty templated field is left out, a fixed one is kept')
})

t.test('custom steps: a cookie from the jar, bodyNot and a sender error', async (t) => {
  const flow = new LoginFlow({
    username: 'u',
    password: { value: 'p' },
    steps: [
      { url: '/start', extract: { x: { cookie: 'XSRF-TOKEN' } } },
      { name: 'check', url: '/check', headers: { 'X-XSRF-TOKEN': '{{x}}' }, expect: { bodyNot: 'Bad credentials' } }
    ]
  }, 'test')
  const ok = fakeSender([() => respond(200, []), () => respond(200, [], 'welcome')])
  await flow.run(BASE, BASE, ok.send, (n) => n === 'XSRF-TOKEN' ? 'jar-value' : undefined)
  t.equal(header(ok.sent[1]!, 'X-XSRF-TOKEN'), 'jar-value', 'a cookie set earlier, read from the jar')

  const bad = fakeSender([() => respond(200, []), () => respond(200, [], springLoginPage({ error: true }))])
  const err = await flow.run(BASE, BASE, bad.send, noJar).catch((e: unknown) => e)
  t.equal((err as LoginFailedError).step, 'check')
  t.match((err as Error).message, 'the response matches /Bad credentials/')

  const unnamed = await flow.run(BASE, BASE, async () => { throw new Error('connect ECONNREFUSED 127.0.0.1:8080') }, noJar).catch((e: unknown) => e)
  t.type(unnamed, LoginFailedError)
  t.equal((unnamed as LoginFailedError).step, 'step 1', 'an unnamed step is named by its position')
  t.match((unnamed as Error).message, 'failed at step "step 1": connect ECONNREFUSED')
})

t.test('custom steps: token from the last response', async (t) => {
  const flow = new LoginFlow({ username: 'u', password: { value: 'p' }, steps: [{ url: '/a' }, { url: '/b' }], token: { from: { json: 'access_token' } } }, 'test')
  const { send } = fakeSender([() => respond(200, [], '{"access_token":"first"}'), () => respond(200, [], '{"access_token":"second"}')])
  t.same((await flow.run(BASE, BASE, send, noJar)).token, { header: 'Authorization', value: 'Bearer second' })
  const prefixed = new LoginFlow({ username: 'u', password: { value: 'p' }, steps: [{ url: '/a' }], token: { from: { header: 'X-Auth-Token' }, header: 'X-Auth-Token', prefix: '' } }, 'test')
  const p = fakeSender([() => respond(200, [['X-Auth-Token', 'tok']])])
  t.same((await prefixed.run(BASE, BASE, p.send, noJar)).token, { header: 'X-Auth-Token', value: 'tok' })
})

t.test('secrets are read at run time; configuration errors', async (t) => {
  process.env.SP_TEST_LOGIN_PASSWORD = 'first'
  t.teardown(() => { delete process.env.SP_TEST_LOGIN_PASSWORD })
  const flow = new LoginFlow({ preset: 'basic-session', username: 'alice', password: { env: 'SP_TEST_LOGIN_PASSWORD' } }, 'test')
  const a = fakeSender([() => respond(200, [])])
  await flow.run(BASE, BASE, a.send, noJar)
  process.env.SP_TEST_LOGIN_PASSWORD = 'rotated'
  const b = fakeSender([() => respond(200, [])])
  await flow.run(BASE, BASE, b.send, noJar)
  t.equal(header(a.sent[0]!, 'authorization'), 'Basic ' + Buffer.from('alice:first').toString('base64'))
  t.equal(header(b.sent[0]!, 'authorization'), 'Basic ' + Buffer.from('alice:rotated').toString('base64'), 'a rotated secret is used by the next login')

  t.throws(() => new LoginFlow({ username: 'u' }, 'profiles.p.autopilot[0].login'), ConfigError, 'neither preset nor steps')
  t.throws(() => new LoginFlow({ preset: 'spring-form', username: 'u', password: { env: 'SP_TEST_UNSET_VARIABLE_X' } }, 'profiles.p.autopilot[0].login'), /SP_TEST_UNSET_VARIABLE_X is not set/, 'a missing secret fails at start-up')
})

t.test('resolveStepUrl', async (t) => {
  t.equal(resolveStepUrl('http://127.0.0.1:8080', '/login'), 'http://127.0.0.1:8080/login')
  t.equal(resolveStepUrl('http://127.0.0.1:8080/', '/login'), 'http://127.0.0.1:8080/login', 'no double slash')
  t.equal(resolveStepUrl('http://127.0.0.1:8080/app', '/login'), 'http://127.0.0.1:8080/app/login', 'the context path is kept for /paths')
  t.equal(resolveStepUrl('http://127.0.0.1:8080/app/', 'login'), 'http://127.0.0.1:8080/app/login')
  t.equal(resolveStepUrl('http://127.0.0.1:8080/app', 'j_security_check'), 'http://127.0.0.1:8080/app/j_security_check')
  t.equal(resolveStepUrl('http://127.0.0.1:8080/app', '/api/auth/redeem?ticket=a.1'), 'http://127.0.0.1:8080/app/api/auth/redeem?ticket=a.1', 'query kept')
  t.equal(resolveStepUrl('http://127.0.0.1:8080/app', 'https://idp.example.com/login'), 'https://idp.example.com/login', 'absolute URLs stay')
  t.equal(resolveStepUrl('http://127.0.0.1:8080/app', 'HTTP://OTHER:81/x'), 'HTTP://OTHER:81/x')
})

t.test('credentials go only to the login origin, or to an absolute URL written in the step', async (t) => {
  const steps = (url: string): LoginConfig => ({
    username: 'alice',
    password: { value: 'alice-secret' },
    steps: [
      { name: 'discover', url: '/api/discover', extract: { next: { json: 'next' } } },
      { name: 'submit', url, form: { u: '{{username}}', p: '{{password}}' }, expect: { status: [200] } }
    ]
  })
  const hostile = fakeSender([() => respond(200, [['Content-Type', JSON_TYPE]], '{"next":"http://evil.example:8080/steal"}')])
  const err = await new LoginFlow(steps('{{next}}'), 'test').run(BASE, BASE, hostile.send, noJar).catch((e: unknown) => e)
  t.match(err, { code: 'SP_LOGIN_FAILED', message: /failed at step "submit": refusing to send the credentials to http:\/\/evil\.example:8080: they go only to http:\/\/127\.0\.0\.1:8080/ })
  t.equal(hostile.sent.length, 1, 'the server-chosen URL never got the password')

  const sameHost = fakeSender([() => respond(200, [['Content-Type', JSON_TYPE]], '{"next":"/api/auth"}'), () => respond(200, [])])
  await new LoginFlow(steps('{{next}}'), 'test').run(BASE, BASE, sameHost.send, noJar)
  t.equal(sameHost.sent[1]!.url, `${BASE}/api/auth`, 'a path under the base stays at the login origin')

  const literal = fakeSender([() => respond(200, []), () => respond(200, [])])
  await new LoginFlow(steps('https://sso.example.com/login'), 'test').run(BASE, BASE, literal.send, noJar)
  t.equal(literal.sent[1]!.url, 'https://sso.example.com/login', 'an absolute URL written in the config is where the operator sends it')

  const elsewhere = fakeSender([() => respond(200, []), () => respond(200, [])])
  const e2 = await new LoginFlow(steps('/login'), 'test').run(BASE, BASE, elsewhere.send, noJar, 'https://login.example.com:443').catch((e: unknown) => e)
  t.match(e2, { message: /refusing to send the credentials to http:\/\/127\.0\.0\.1:8080/ }, 'the login origin given by the caller rules')
})

t.test('values that cannot be sent: refused in step headers and in the login token', async (t) => {
  const flow = new LoginFlow({ username: 'a', password: { value: 'p' }, steps: [{ url: '/one', extract: { v: { json: 'v' } } }, { url: '/two', headers: { 'X-Value': '{{v}}' } }] }, 'test')
  const s = fakeSender([() => respond(200, [['Content-Type', JSON_TYPE]], '{"v":"a\\r\\nX-Evil: 1"}')])
  t.match(await flow.run(BASE, BASE, s.send, noJar).catch((e: unknown) => e), { message: /failed at step "step 2": the value of header X-Value cannot be sent: it contains a line break/ })
  const token = new LoginFlow({ preset: 'json-token', username: 'a', password: { value: 'p' } }, 'test')
  const t2 = fakeSender([() => respond(200, [['Content-Type', JSON_TYPE]], '{"token":"\\u20ac"}')])
  t.match(await token.run(BASE, BASE, t2.send, noJar).catch((e: unknown) => e), { code: 'SP_LOGIN_FAILED', message: /failed at step "token": the token at \{"json":"token"\} cannot be sent in a header: it contains a character outside latin1/ })
})

t.test('a secret that goes away after start fails the login with SP_SECRET_UNAVAILABLE, not the flow\'s construction', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sp-secret-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'pw')
  writeFileSync(file, 'file-secret\n')
  const config: LoginConfig = { preset: 'basic-session', username: 'alice', password: { file } }
  void new LoginFlow(config, 'profiles.p.autopilot[0].login')
  rmSync(file)
  const again = new LoginFlow(config, 'profiles.p.autopilot[0].login')
  const s = fakeSender([() => respond(200, [])])
  const err = await again.run(BASE, BASE, s.send, noJar).catch((e: unknown) => e)
  t.match(err, { code: 'SP_SECRET_UNAVAILABLE', statusCode: 502, message: /failed at step "secret": profiles\.p\.autopilot\[0\]\.login\.password: cannot read secret file/ })
  t.notOk((err as Error).message.includes('file-secret'))
  t.equal(s.sent.length, 0)
  t.throws(() => new LoginFlow({ preset: 'basic-session', username: 'a', password: { file } }, 'x'), /cannot read secret file/, 'a new secret reference is still checked')
})

t.test('a step limit keeps its code; regular expressions are checked at load', async (t) => {
  const flow = new LoginFlow({ preset: 'json-token', username: 'a', password: { value: 'p' } }, 'test')
  const send: StepSender = async () => { throw new SessionProxyError('SP_LOGIN_STEP_TIMEOUT', 502, 'POST x: no complete answer within 5 ms (limits.loginStepTimeoutMs)') }
  t.match(await flow.run(BASE, BASE, send, noJar).catch((e: unknown) => e), { code: 'SP_LOGIN_STEP_TIMEOUT', message: /failed at step "token request": POST x: no complete answer/ })
  const other: StepSender = async () => { throw new Error('socket hang up') }
  t.match(await flow.run(BASE, BASE, other, noJar).catch((e: unknown) => e), { code: 'SP_LOGIN_FAILED' })
  t.throws(() => new LoginFlow({ username: 'a', steps: [{ url: '/', expect: { locationNot: '(' } }] }, 'p.login'), /p\.login\.steps\[0\]\.expect\.locationNot: invalid regular expression/)
  t.throws(() => new LoginFlow({ username: 'a', steps: [{ url: '/', loggedInUnlessBody: '[' }] }, 'p.login'), /steps\[0\]\.loggedInUnlessBody/)
})
