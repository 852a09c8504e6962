/**
 * values.ts: reading tokens out of responses shaped like Spring Security 6's
 * (DefaultLoginPageGeneratingFilter's hidden input, Thymeleaf meta tags, the
 * CsrfToken JSON, CookieCsrfTokenRepository's cookie, Tomcat's header).
 */
import t from 'tap'
import {
  cookiesFromSetCookie, describeSource, headerValue, htmlInput, htmlMeta, jsonField, needsBody, readValue, unsendableReason, type ResponseView
} from '../../../src/session/autopilot/values.js'
import {
  csrfTokenJson, maskCsrfToken, rawCsrfToken, springAppPage, springLoginPage, tomcatDeleteCookie, unmaskCsrfToken, xsrfClearCookie, xsrfCookie
} from '../../helpers/spring-responses.js'

const noJar = (): undefined => undefined

function response (opts: { headers?: string[], setCookie?: string[], body?: string | null, contentType?: string }): ResponseView {
  return { headers: opts.headers ?? [], setCookies: cookiesFromSetCookie(opts.setCookie ?? null), body: opts.body ?? null, contentType: opts.contentType ?? '' }
}

t.test('the fixture masks tokens the way XorCsrfTokenRequestAttributeHandler does', async (t) => {
  const raw = rawCsrfToken()
  const a = maskCsrfToken(raw)
  const b = maskCsrfToken(raw)
  t.not(a, b, 'a new mask every time')
  t.equal(a.length, 96, '36 bytes of UUID -> 72 bytes -> 96 Base64 characters')
  t.match(a, /^[A-Za-z0-9_-]+$/)
  t.equal(unmaskCsrfToken(a, raw.length), raw)
  t.equal(unmaskCsrfToken(b, raw.length), raw)
  t.equal(unmaskCsrfToken(raw, raw.length), null, 'a raw token is not accepted where a masked one is expected')
})

t.test('html input: Spring Security 6 default login page', async (t) => {
  const token = maskCsrfToken(rawCsrfToken())
  const page = springLoginPage({ csrf: token })
  t.equal(htmlInput(page, '_csrf'), token, 'the hidden _csrf input (name before type and value)')
  t.equal(htmlInput(page, 'username'), undefined, 'an input without value has none')
  t.equal(htmlInput(springLoginPage({ csrf: null }), '_csrf'), undefined, 'csrf.disable(): no input, no token')
  t.equal(readValue({ html: { input: '_csrf' } }, response({ body: page, contentType: 'text/html;charset=UTF-8' }), noJar), token)
})

t.test('html input: attribute order, quotes, case, whitespace and entities', async (t) => {
  const cases: Array<[string, string | undefined, string]> = [
    ['<input type="hidden" name="_csrf" value="abc"/>', 'abc', 'type, name, value'],
    ['<input value="abc" type="hidden" name="_csrf">', 'abc', 'value before name'],
    ["<input type='hidden' name='_csrf' value='abc'>", 'abc', 'single quotes'],
    ['<input type=hidden name=_csrf value=abc>', 'abc', 'unquoted'],
    ['<INPUT TYPE="HIDDEN" NAME="_csrf" VALUE="abc">', 'abc', 'upper-case tag and attribute names'],
    ['<input\n    type="hidden"\n    name = "_csrf"\n    value = "abc"\n/>', 'abc', 'attributes on several lines, spaces around ='],
    ['<input type="hidden" name="_csrf" value="a&amp;b&lt;c&gt;d&quot;e&#39;f&#x2F;g&#61;">', 'a&b<c>d"e\'f/g=', 'entities decoded'],
    ['<input type="hidden" data-name="_csrf" name="other" value="no"><input name="_csrf" value="yes">', 'yes', 'data-name is not name'],
    ['<input name="_csrf_header" value="X"><input name="_csrf" value="right">', 'right', 'a longer name that starts the same is another input'],
    ['<input name="_csrf" value="first"><input name="_csrf" value="second">', 'first', 'the first of several'],
    ['<input name="_csrf" value="">', '', 'an empty value is empty, not missing'],
    ['<input name="_CSRF" value="abc">', undefined, 'names are case-sensitive'],
    ['<meta name="_csrf" content="abc">', undefined, 'a meta is not an input']
  ]
  for (const [html, expected, what] of cases) t.equal(htmlInput(html, '_csrf'), expected, what)
})

t.test('html meta: Thymeleaf _csrf and _csrf_header', async (t) => {
  const token = maskCsrfToken(rawCsrfToken())
  const page = springAppPage({ user: 'alice', csrf: token, headerName: 'X-APP-CSRF' })
  t.equal(htmlMeta(page, '_csrf'), token)
  t.equal(htmlMeta(page, '_csrf_header'), 'X-APP-CSRF')
  t.equal(htmlMeta('<meta content="tok" name="_csrf">', '_csrf'), 'tok', 'content before name')
  t.equal(htmlMeta("<META NAME='_csrf' CONTENT='t&amp;k'/>", '_csrf'), 't&k', 'upper case, single quotes, entity')
  t.equal(htmlMeta('<meta name="_csrf_parameter" content="_csrf"><meta name="_csrf" content="tok">', '_csrf'), 'tok')
  t.equal(htmlMeta(page, 'missing'), undefined)
  t.equal(readValue({ html: { meta: '_csrf' } }, response({ body: page }), noJar), token)
})

t.test('json field: Spring CsrfToken JSON and token responses', async (t) => {
  const body = csrfTokenJson('masked-token', 'X-CSRF-TOKEN')
  t.equal(jsonField(body, 'token'), 'masked-token')
  t.equal(jsonField(body, 'headerName'), 'X-CSRF-TOKEN')
  t.equal(jsonField('{"data":{"auth":{"accessToken":"deep"}}}', 'data.auth.accessToken'), 'deep', 'dotted path')
  t.equal(jsonField('{"tokens":["a","b"]}', 'tokens.1'), 'b', 'array index')
  t.equal(jsonField('{"expiresIn":3600}', 'expiresIn'), '3600', 'a number becomes text')
  t.equal(jsonField('{"token":null}', 'token'), undefined)
  t.equal(jsonField('{"token":{"v":1}}', 'token'), undefined, 'an object is not a value')
  t.equal(jsonField('{"token":true}', 'token'), undefined)
  t.equal(jsonField('{"a":"x"}', 'a.b'), undefined, 'path through a string')
  t.equal(jsonField('<html>not json</html>', 'token'), undefined, 'a login page instead of JSON')
  t.equal(readValue({ json: 'token' }, response({ body, contentType: 'application/json' }), noJar), 'masked-token')
})

t.test('response header: Tomcat X-CSRF-Token, Spring Session X-Auth-Token', async (t) => {
  const headers = ['Content-Type', 'application/json', 'X-CSRF-Token', 'NONCE1', 'x-auth-token', '3f2a']
  t.equal(headerValue(headers, 'x-csrf-token'), 'NONCE1', 'case-insensitive name')
  t.equal(headerValue(headers, 'X-Auth-Token'), '3f2a')
  t.equal(headerValue(headers, 'missing'), undefined)
  t.equal(readValue({ header: 'X-CSRF-TOKEN' }, response({ headers }), noJar), 'NONCE1')
  t.equal(readValue({ header: 'X-CSRF-TOKEN' }, null, noJar), undefined, 'no response, no header')
})

t.test('cookie: CookieCsrfTokenRepository XSRF-TOKEN, from the response or the jar', async (t) => {
  const raw = rawCsrfToken()
  const set = [xsrfCookie(raw), 'JSESSIONID=0A1B2C3D4E5F60718293A4B5C6D7E8F9; Path=/; HttpOnly']
  const map = cookiesFromSetCookie(set)
  t.equal(map.get('XSRF-TOKEN'), raw)
  t.equal(map.get('JSESSIONID'), '0A1B2C3D4E5F60718293A4B5C6D7E8F9')
  t.equal(cookiesFromSetCookie([xsrfClearCookie()]).get('XSRF-TOKEN'), '', 'a cleared cookie reads as empty')
  t.equal(cookiesFromSetCookie([tomcatDeleteCookie('JSESSIONID')]).get('JSESSIONID'), '')
  t.equal(cookiesFromSetCookie(['b64=YWJj==; Path=/']).get('b64'), 'YWJj==', 'an = inside the value is kept')
  t.same([...cookiesFromSetCookie(null)], [])

  t.equal(readValue({ cookie: 'XSRF-TOKEN' }, response({ setCookie: set }), () => 'from-jar'), raw, 'the response wins over the jar')
  t.equal(readValue({ cookie: 'XSRF-TOKEN' }, response({}), (n) => n === 'XSRF-TOKEN' ? 'from-jar' : undefined), 'from-jar', 'a cookie set earlier counts')
  t.equal(readValue({ cookie: 'XSRF-TOKEN' }, null, () => 'from-jar'), 'from-jar', 'also with no response at all')
})

t.test('a body that was not read gives no html/json value', async (t) => {
  t.equal(readValue({ html: { input: '_csrf' } }, response({ body: null }), noJar), undefined)
  t.equal(readValue({ json: 'token' }, response({ body: null }), noJar), undefined)
})

t.test('describeSource and needsBody', async (t) => {
  t.equal(describeSource({ cookie: 'XSRF-TOKEN' }), 'cookie:XSRF-TOKEN')
  t.equal(describeSource({ header: 'X-CSRF-Token' }), 'header:X-CSRF-Token')
  t.equal(describeSource({ json: 'token' }), 'json:token')
  t.equal(describeSource({ html: { input: '_csrf' } }), 'html:input[name=_csrf]')
  t.equal(describeSource({ html: { meta: '_csrf' } }), 'html:meta[name=_csrf]')
  t.equal(needsBody({ html: { meta: '_csrf' } }), 'html')
  t.equal(needsBody({ json: 'token' }), 'json')
  t.equal(needsBody({ cookie: 'XSRF-TOKEN' }), null)
  t.equal(needsBody({ header: 'X-CSRF-Token' }), null)
})

t.test('unsendableReason: what a header cannot carry', async (t) => {
  t.equal(unsendableReason('3f1e9c2a-token_/+=.~'), null)
  t.equal(unsendableReason('with space\tand tab'), null)
  t.equal(unsendableReason('caf\u00e9 \u00ff'), null, 'latin1 bytes go out as they came')
  t.equal(unsendableReason(''), null)
  t.equal(unsendableReason('a\r\nX-Injected: 1'), 'it contains a line break')
  t.equal(unsendableReason('a\nb'), 'it contains a line break')
  t.equal(unsendableReason('a\u0000b'), 'it contains the control character 0x00')
  t.equal(unsendableReason('a\u007fb'), 'it contains the control character 0x7f')
  t.equal(unsendableReason('a\u001bb'), 'it contains the control character 0x1b')
  t.equal(unsendableReason('\u20ac'), 'it contains a character outside latin1')
  t.equal(unsendableReason('\ud800'), 'it contains a character outside latin1', 'a lone surrogate')
  t.equal(unsendableReason('x'.repeat(16 * 1024)), null)
  t.equal(unsendableReason('x'.repeat(16 * 1024 + 1)), 'it is longer than 16384 characters')
})
