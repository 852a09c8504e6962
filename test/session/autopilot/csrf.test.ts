/**
 * csrf.ts: capture, injection and rejection detection for each token source
 * and preset, against responses shaped like Spring Security 6's and Tomcat's
 * RestCsrfPreventionFilter's.
 */
import t from 'tap'
import { CsrfRules, isTokenHeaderName, UNSAFE_METHODS } from '../../../src/session/autopilot/csrf.js'
import { HostAutopilot } from '../../../src/session/autopilot/host-autopilot.js'
import { cookiesFromSetCookie, type ResponseView } from '../../../src/session/autopilot/values.js'
import { ConfigError } from '../../../src/errors.js'
import {
  csrfTokenJson, maskCsrfToken, rawCsrfToken, springAppPage, springLoginPage, xsrfClearCookie, xsrfCookie
} from '../../helpers/spring-responses.js'

const noJar = (): undefined => undefined
const jarOf = (cookies: Record<string, string>) => (name: string): string | undefined => cookies[name]

function html (body: string, setCookie: string[] | null = null): ResponseView {
  return { headers: ['Content-Type', 'text/html;charset=UTF-8'], setCookies: cookiesFromSetCookie(setCookie), body, contentType: 'text/html;charset=UTF-8' }
}
function headersOnly (headers: string[], setCookie: string[] | null = null): ResponseView {
  return { headers, setCookies: cookiesFromSetCookie(setCookie), body: null, contentType: '' }
}

t.test('spring preset: the hidden _csrf input of the login page, sent as X-CSRF-TOKEN', async (t) => {
  const rules = new CsrfRules([{ preset: 'spring' }], 'test')
  t.equal(rules.refreshPath, '/', 'tokens are fetched from / when none is known')
  t.ok(rules.bodyKinds.has('html'), 'HTML bodies are read')
  t.notOk(rules.hasToken(noJar))
  const token = maskCsrfToken(rawCsrfToken())
  t.same(rules.capture(html(springLoginPage({ csrf: token })), noJar), [{ name: 'X-CSRF-TOKEN', source: 'html:input[name=_csrf]', refreshed: false }])
  t.ok(rules.hasToken(noJar))
  t.same(rules.headers(noJar), [['x-csrf-token', 'X-CSRF-TOKEN', token]])
  t.same(rules.formFields(noJar), [], 'the spring preset sends a header, not a form field')
  t.same(rules.capture(html(springLoginPage({ csrf: token })), noJar), [], 'the same value again is not news')
  const next = maskCsrfToken(rawCsrfToken())
  t.same(rules.capture(html(springLoginPage({ csrf: next })), noJar), [{ name: 'X-CSRF-TOKEN', source: 'html:input[name=_csrf]', refreshed: true }], 'a new value is a refresh')
  t.same(rules.headers(noJar), [['x-csrf-token', 'X-CSRF-TOKEN', next]])
  t.same(rules.capture(html(springLoginPage({ csrf: null })), noJar), [], 'a page without a token keeps the known one')
  t.same(rules.headers(noJar), [['x-csrf-token', 'X-CSRF-TOKEN', next]])
  rules.forget()
  t.notOk(rules.hasToken(noJar), 'a login forgets tokens of the old session')
  t.same(rules.headers(noJar), [])
})

t.test('spring preset: <meta name="_csrf"> sent in the header <meta name="_csrf_header"> names', async (t) => {
  const rules = new CsrfRules([{ preset: 'spring' }], 'test')
  const token = maskCsrfToken(rawCsrfToken())
  const captured = rules.capture(html(springAppPage({ user: 'alice', csrf: token, headerName: 'X-APP-CSRF', form: false })), noJar)
  t.same(captured, [{ name: 'X-APP-CSRF', source: 'html:meta[name=_csrf]', refreshed: false }])
  t.same(rules.headers(noJar), [['x-app-csrf', 'X-APP-CSRF', token]])
})

t.test('spring preset: a page with both the meta tag and a form input gives one header, not two', async (t) => {
  // Thymeleaf pages usually have both (meta for JavaScript, the hidden input
  // in each form). Sending the header twice makes Node and many frameworks
  // see "v, v"; Tomcat's getHeader takes the first, which may be stale.
  const rules = new CsrfRules([{ preset: 'spring' }], 'test')
  const token = maskCsrfToken(rawCsrfToken())
  rules.capture(html(springAppPage({ user: 'alice', csrf: token })), noJar)
  const sent = rules.headers(noJar).filter(([lower]) => lower === 'x-csrf-token')
  t.equal(sent.length, 1, 'exactly one X-CSRF-TOKEN')
  t.equal(sent[0]?.[2], token)
})

t.test('spring preset: the newest token wins when input and meta came from different pages', async (t) => {
  const rules = new CsrfRules([{ preset: 'spring' }], 'test')
  const older = maskCsrfToken(rawCsrfToken())
  const newer = maskCsrfToken(rawCsrfToken())
  rules.capture(html(springLoginPage({ csrf: older })), noJar)
  rules.capture(html(springAppPage({ user: 'alice', csrf: newer, form: false })), noJar)
  const sent = rules.headers(noJar).filter(([lower]) => lower === 'x-csrf-token')
  t.same(sent.map((h) => h[2]), [newer], 'only the token captured last is sent')
})

t.test('spring-cookie preset: XSRF-TOKEN cookie -> X-XSRF-TOKEN header, read from the jar', async (t) => {
  const rules = new CsrfRules([{ preset: 'spring-cookie' }], 'test')
  t.equal(rules.bodyKinds.size, 0, 'no body needed')
  t.equal(rules.refreshPath, '/')
  const raw = rawCsrfToken()
  t.same(rules.capture(headersOnly([], [xsrfCookie(raw)]), noJar), [{ name: 'X-XSRF-TOKEN', source: 'cookie:XSRF-TOKEN', refreshed: false }])
  t.same(rules.capture(headersOnly([], [xsrfCookie(raw)]), jarOf({ 'XSRF-TOKEN': raw })), [], 'the same cookie again is not news (the jar already has it)')
  const raw2 = rawCsrfToken()
  t.same(rules.capture(headersOnly([], [xsrfCookie(raw2)]), jarOf({ 'XSRF-TOKEN': raw2 })), [{ name: 'X-XSRF-TOKEN', source: 'cookie:XSRF-TOKEN', refreshed: true }], 'a new value is a refresh')
  t.same(rules.capture(headersOnly([], [xsrfClearCookie()]), noJar), [], 'the cookie cleared at login is no token')
  t.notOk(rules.hasToken(noJar), 'cookie tokens live in the jar only')
  t.ok(rules.hasToken(jarOf({ 'XSRF-TOKEN': raw })))
  t.same(rules.headers(jarOf({ 'XSRF-TOKEN': raw })), [['x-xsrf-token', 'X-XSRF-TOKEN', raw]], 'the raw cookie value, as the SPA handler expects')
  t.same(rules.headers(noJar), [])
})

t.test('tomcat preset: fetch protocol header -> header, protocol words ignored', async (t) => {
  const rules = new CsrfRules([{ preset: 'tomcat' }], 'test')
  t.same(rules.safeRequestHeaders, [['x-csrf-token', 'X-CSRF-Token', 'Fetch']], 'safe requests ask for the nonce')
  t.same(rules.refreshHeaders, [['X-CSRF-Token', 'Fetch']])
  t.equal(rules.refreshPath, null, 'the refresh re-fetches the request URL')
  t.same(rules.capture(headersOnly(['X-CSRF-Token', 'Required']), noJar), [], '"Required" is not a token')
  t.same(rules.capture(headersOnly(['X-CSRF-Token', 'fetch']), noJar), [], '"Fetch" neither (any case)')
  t.same(rules.capture(headersOnly(['x-csrf-token', '5C0C3DA2E7C4A3E26F9B6C7B8D1E0F21']), noJar), [{ name: 'X-CSRF-Token', source: 'header:X-CSRF-Token', refreshed: false }])
  t.same(rules.headers(noJar), [['x-csrf-token', 'X-CSRF-Token', '5C0C3DA2E7C4A3E26F9B6C7B8D1E0F21']])
  t.ok(rules.isRejection(403, 'POST', ['X-CSRF-Token', 'Required']), "Tomcat's rejection")
})

t.test('custom rules: each source to header or form field', async (t) => {
  const header = new CsrfRules([{ from: { header: 'X-CSRF-TOKEN' }, to: { header: 'X-CSRF-TOKEN' } }], 'test')
  header.capture(headersOnly(['X-CSRF-TOKEN', 'from-header']), noJar)
  t.same(header.headers(noJar), [['x-csrf-token', 'X-CSRF-TOKEN', 'from-header']], 'response header -> request header')

  const json = new CsrfRules([{ from: { json: 'token' }, to: { header: 'X-CSRF-TOKEN' }, refreshPath: '/api/csrf' }], 'test')
  t.equal(json.refreshPath, '/api/csrf')
  t.ok(json.bodyKinds.has('json'))
  const masked = maskCsrfToken(rawCsrfToken())
  json.capture({ headers: [], setCookies: new Map(), body: csrfTokenJson(masked), contentType: 'application/json' }, noJar)
  t.same(json.headers(noJar), [['x-csrf-token', 'X-CSRF-TOKEN', masked]], 'JSON field -> header')

  const form = new CsrfRules([{ from: { html: { input: '_csrf' } }, to: { form: '_csrf' } }], 'test')
  form.capture(html(springLoginPage({ csrf: masked })), noJar)
  t.same(form.formFields(noJar), [['_csrf', masked]], 'HTML input -> form field')
  t.same(form.headers(noJar), [], 'and no header')

  const cookieForm = new CsrfRules([{ from: { cookie: 'XSRF-TOKEN' }, to: { form: '_csrf', header: 'X-XSRF-TOKEN' } }], 'test')
  t.same(cookieForm.formFields(jarOf({ 'XSRF-TOKEN': 'c' })), [['_csrf', 'c']], 'cookie -> form field')
  t.same(cookieForm.headers(jarOf({ 'XSRF-TOKEN': 'c' })), [['x-xsrf-token', 'X-XSRF-TOKEN', 'c']], 'and header')

  t.same(new CsrfRules([{ preset: 'spring' }, { from: { json: 'token' }, to: { header: 'X-J' } }], 'test').describe(), [
    { source: 'html:input[name=_csrf]', header: 'X-CSRF-TOKEN', form: null },
    { source: 'html:meta[name=_csrf]', header: 'X-CSRF-TOKEN', form: null },
    { source: 'cookie:XSRF-TOKEN', header: 'X-XSRF-TOKEN', form: null },
    { source: 'json:token', header: 'X-J', form: null }
  ])
  t.throws(() => new CsrfRules([{ from: { json: 'token' } }], 'profiles.p.autopilot[0].csrf'), ConfigError, 'from without to')
  t.throws(() => new CsrfRules([{}], 'x'), /give a preset/)
})

t.test('isRejection: a 403 to an unsafe request, unless it names a token', async (t) => {
  const rules = new CsrfRules([{ preset: 'spring' }], 'test')
  const springBody = ['Content-Type', 'application/json']
  for (const m of ['POST', 'PUT', 'PATCH', 'DELETE']) t.ok(rules.isRejection(403, m, springBody), `Spring's bare 403 to ${m}`)
  for (const m of ['GET', 'HEAD', 'OPTIONS', 'TRACE']) t.notOk(rules.isRejection(403, m, springBody), `not to ${m}`)
  t.notOk(rules.isRejection(401, 'POST', springBody), 'a 401 is not')
  t.notOk(rules.isRejection(200, 'POST', springBody))
  t.ok(rules.isRejection(403, 'POST', ['X-CSRF-Token', 'Required']), 'Tomcat says Required')
  t.notOk(rules.isRejection(403, 'POST', ['X-CSRF-Token', 'A1B2C3']), 'a 403 that carries a token is about something else')
  t.same([...UNSAFE_METHODS].sort(), ['DELETE', 'PATCH', 'POST', 'PUT'])
})

const HERE = { scheme: 'http', host: '127.0.0.1', port: 8080 } as const

t.test('HostAutopilot: tokens only on POST/PUT/PATCH/DELETE; fetch header only on safe requests', async (t) => {
  const jar = jarOf({ 'XSRF-TOKEN': 'raw-token' })
  const springRule = new HostAutopilot({ match: '127.0.0.1:8080', csrf: [{ preset: 'spring-cookie' }] }, 'test')
  const spring = springRule.at(HERE)
  for (const m of ['POST', 'PUT', 'PATCH', 'DELETE']) t.same(spring.requestHeaders(m, jar), [['x-xsrf-token', 'X-XSRF-TOKEN', 'raw-token']], m)
  for (const m of ['GET', 'HEAD', 'OPTIONS', 'TRACE']) t.same(spring.requestHeaders(m, jar), [], m)

  const tomcat = new HostAutopilot({ match: '127.0.0.1:8080', csrf: [{ preset: 'tomcat' }] }, 'test').at(HERE)
  tomcat.capture(headersOnly(['X-CSRF-Token', 'NONCE']), noJar)
  t.same(tomcat.requestHeaders('GET', noJar), [['x-csrf-token', 'X-CSRF-Token', 'Fetch']])
  t.same(tomcat.requestHeaders('POST', noJar), [['x-csrf-token', 'X-CSRF-Token', 'NONCE']])

  t.ok(springRule.matches('127.0.0.1', 8080))
  t.notOk(springRule.matches('127.0.0.1', 8081), 'another port is another host')
  t.notOk(springRule.matches('localhost', 8080))
})

t.test('HostAutopilot: wantsBody follows the rules\' sources', async (t) => {
  const spring = new HostAutopilot({ match: 'h', csrf: [{ preset: 'spring' }] }, 'test')
  t.ok(spring.wantsBody('text/html;charset=UTF-8'))
  t.notOk(spring.wantsBody('application/json'))
  const json = new HostAutopilot({ match: 'h', csrf: [{ from: { json: 'token' }, to: { header: 'X' } }] }, 'test')
  t.ok(json.wantsBody('application/json'))
  t.notOk(json.wantsBody('text/html'))
  t.notOk(new HostAutopilot({ match: 'h', csrf: [{ preset: 'spring-cookie' }] }, 'test').wantsBody('text/html'))
})

t.test('HostAutopilot: X-Auth-Token sessions are captured and sent back', async (t) => {
  const pilot = new HostAutopilot({ match: 'h', sessionHeaders: ['X-Auth-Token'] }, 'test').at({ scheme: 'http', host: 'h', port: 80 })
  t.same(pilot.requestHeaders('GET', noJar), [])
  pilot.capture(headersOnly(['x-auth-token', 'f0b5a2b1-3c3e-4bd4-8d5e-0d1c8c2f9a11']), noJar)
  t.same(pilot.requestHeaders('GET', noJar), [['x-auth-token', 'X-Auth-Token', 'f0b5a2b1-3c3e-4bd4-8d5e-0d1c8c2f9a11']], 'configured spelling, sent on later requests')
  pilot.capture(headersOnly(['X-Auth-Token', '']), noJar)
  t.same(pilot.requestHeaders('POST', noJar), [['x-auth-token', 'X-Auth-Token', 'f0b5a2b1-3c3e-4bd4-8d5e-0d1c8c2f9a11']], 'an empty value (session expired) does not overwrite it')
})

t.test('a token that cannot be sent is refused when captured, and the known one kept', async (t) => {
  const rules = new CsrfRules([{ preset: 'spring' }], 'test')
  rules.capture(html(springLoginPage({ csrf: 'GOOD' })), noJar)
  const bad = rules.capture(html('<input type="hidden" name="_csrf" value="x&#13;&#10;Evil: 1">'), noJar)
  t.same(bad, [{ name: 'X-CSRF-TOKEN', source: 'html:input[name=_csrf]', refreshed: false, rejected: 'it contains a line break' }])
  t.same(rules.headers(noJar), [['x-csrf-token', 'X-CSRF-TOKEN', 'GOOD']], 'the refused value is not kept')

  const json = new CsrfRules([{ from: { json: 'token' }, to: { form: '_csrf' } }], 'test')
  const wide = json.capture({ headers: [], setCookies: new Map(), body: '{"token":"\\ud800"}', contentType: 'application/json' }, noJar)
  t.equal(wide[0]?.rejected, 'it contains a character outside latin1', 'a lone surrogate (encodeURIComponent would throw on it)')
  t.same(json.formFields(noJar), [])

  const cookie = new CsrfRules([{ preset: 'spring-cookie' }], 'test')
  const c = cookie.capture(headersOnly([], ['XSRF-TOKEN=a\u0001b; Path=/']), noJar)
  t.equal(c[0]?.rejected, 'it contains the control character 0x01')
})

t.test('a page cannot choose a framing or credential header for its token', async (t) => {
  for (const name of ['Host', 'Content-Length', 'transfer-encoding', 'Cookie', 'Authorization', 'Connection', 'X Bad', '']) t.notOk(isTokenHeaderName(name), name)
  for (const name of ['X-CSRF-TOKEN', 'X-APP-CSRF', 'x_xsrf']) t.ok(isTokenHeaderName(name), name)
  const rules = new CsrfRules([{ preset: 'spring' }], 'test')
  rules.capture(html('<meta name="_csrf" content="TOK"><meta name="_csrf_header" content="Content-Length">'), noJar)
  t.same(rules.headers(noJar), [['x-csrf-token', 'X-CSRF-TOKEN', 'TOK']], 'the configured header is used instead')
})
