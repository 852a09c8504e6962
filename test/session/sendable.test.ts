/**
 * The rules of what a jar may hold (src/session/sendable.ts): the checks the
 * store, cookies.txt import and journal loading share.
 */
import fc from 'fast-check'
import t from 'tap'
import { Cookie } from 'tough-cookie'
import { admitCookie, clampCookieExpiry, cookieNameProblem, cookieValueProblem, expiryIso, MAX_EXPIRY_MS, sendableCookieProblem } from '../../src/session/sendable.js'

const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/

t.test('names: what a Cookie header carries unambiguously, tokens or not', async (t) => {
  // The http-state corpus sends all of these (browsers do too).
  for (const ok of ['a', 'JSESSIONID', '@a', '(a', '"a', 'foo bar', 'caf\u00e9', '\u00e6\u0098\u00a5']) t.equal(cookieNameProblem(ok), null, JSON.stringify(ok))
  const bad: Array<[string, RegExp]> = [
    ['', /empty/],
    ['a;b', /";"/],
    ['a=b', /"="/],
    ['a\u007f', /control character U\+007F/],
    ['a\u0000b', /control character U\+0000/],
    ['a\r\nSet-Cookie: x', /control character U\+000D/],
    ['a\tb', /control character U\+0009/],
    ['\u20ac', /"€".*not a single byte/],
    ['a\u{1F600}', /not a single byte/],
    [' a', /whitespace/],
    ['a ', /whitespace/]
  ]
  for (const [name, re] of bad) t.match(cookieNameProblem(name), re, JSON.stringify(name))
})

t.test('values: may be empty and hold "=", never what a header cannot carry', async (t) => {
  for (const ok of ['', 'x', 'a=b', '"quoted"', 'a,b', 'x y', '\u00e6\u0098\u00a5\u00e8\u008a\u0082']) t.equal(cookieValueProblem(ok), null, JSON.stringify(ok))
  for (const bad of ['\u20ac', 'a;b', 'x\r\ny', 'x\u0001', 'x\u007f', ' x', 'x\t']) t.not(cookieValueProblem(bad), null, JSON.stringify(bad))
})

t.test('expiries beyond 9999 are clamped, session cookies stay session cookies', async (t) => {
  t.equal(new Date(MAX_EXPIRY_MS).toISOString(), '9999-12-31T23:59:59.000Z')
  const now = new Date()
  const huge = new Cookie({ key: 'a', value: '1', domain: 'h.test', path: '/', maxAge: 99999999999999, creation: now, lastAccessed: now })
  t.equal(clampCookieExpiry(huge), true)
  t.same([huge.maxAge, huge.expiryTime()], [null, MAX_EXPIRY_MS])
  t.equal(clampCookieExpiry(huge), false, 'clamping twice changes nothing')

  const infinite = new Cookie({ key: 'a', value: '1', domain: 'h.test', path: '/', maxAge: 'Infinity' })
  t.equal(clampCookieExpiry(infinite), true, 'an "Infinity" Max-Age is a persistent cookie: clamped, not made a session cookie')
  t.equal(infinite.expiryTime(), MAX_EXPIRY_MS)

  const far = new Cookie({ key: 'a', value: '1', domain: 'h.test', path: '/', expires: new Date(Date.UTC(20000, 0, 1)) })
  t.equal(clampCookieExpiry(far), true)
  t.equal(far.expiryTime(), MAX_EXPIRY_MS)

  const session = new Cookie({ key: 'a', value: '1', domain: 'h.test', path: '/' })
  t.equal(clampCookieExpiry(session), false)
  t.equal(session.expiryTime(), Infinity)
  t.equal(sendableCookieProblem(session), null)

  const hour = new Cookie({ key: 'a', value: '1', domain: 'h.test', path: '/', maxAge: 3600, lastAccessed: now })
  t.equal(clampCookieExpiry(hour), false)
  t.equal(hour.maxAge, 3600, 'an ordinary Max-Age keeps tough-cookie semantics')
})

t.test('sendableCookieProblem: what journal loading calls for each record', async (t) => {
  const record = (over: Record<string, unknown>): Cookie => Cookie.fromJSON({ key: 'sid', value: 'v', domain: 'h.test', path: '/', creation: new Date().toISOString(), lastAccessed: new Date().toISOString(), ...over })!
  t.equal(sendableCookieProblem(record({})), null)
  t.match(sendableCookieProblem(record({ value: 'v\r\nX-Injected: 1' })), /^Cookie value cannot be sent: it contains the control character U\+000D/, 'a CRLF in a journal record')
  t.match(sendableCookieProblem(record({ key: 'n\u20ac' })), /^Cookie name cannot be sent/)
  t.match(sendableCookieProblem(record({ expires: 'not a date' })), /^Cookie attribute expires is not a valid date/)
  t.match(sendableCookieProblem(record({ creation: 'garbage' })), /^Cookie attribute creation is not a valid date/)
  t.match(sendableCookieProblem(record({ lastAccessed: 'garbage', maxAge: 10 })), /lastAccessed is not a valid date/)
  t.match(sendableCookieProblem(record({ path: 'nopath' })), /path must start with "\/"/)
  t.match(sendableCookieProblem(record({ path: '/a\tb' })), /^Cookie attribute path cannot be stored/)
  t.match(sendableCookieProblem(record({ domain: 'a b.test' })), /^Cookie attribute domain cannot be stored/)
  t.match(sendableCookieProblem(record({ domain: null })), /domain is missing/)
  const far = record({ expires: new Date(Date.UTC(20000, 0, 1)).toISOString() })
  t.match(sendableCookieProblem(far), /beyond 9999/, 'pure: it reports, admitCookie clamps')
  t.equal(admitCookie(far), null)
  t.equal(far.expiryTime(), MAX_EXPIRY_MS)
  const nan = record({})
  nan.maxAge = Number.NaN
  t.match(sendableCookieProblem(nan), /max-age is not a number/)
})

t.test('expiryIso never throws', async (t) => {
  t.equal(expiryIso(undefined), null)
  t.equal(expiryIso(Infinity), null)
  t.equal(expiryIso(Number.NaN), null)
  t.equal(expiryIso(MAX_EXPIRY_MS), '9999-12-31T23:59:59.000Z')
  t.match(expiryIso(1e20), /^\+275760-/)
  t.match(expiryIso(-1e20), /^-271821-/)
})

t.test('every header a sendable cookie makes is a valid header value', async (t) => {
  for (const [name, value] of [['@a', 'x'], ['foo bar', '"q"'], ['n', '\u00e6\u0098\u00a5']]) {
    t.equal(cookieNameProblem(name!), null)
    t.equal(cookieValueProblem(value!), null)
    t.match(`${name}=${value}`, HEADER_VALUE)
  }
})

t.test('property: whatever passes the checks is a header value that keeps its meaning', async (t) => {
  const text = fc.string({ unit: fc.oneof(fc.constantFrom(' ', '\t', ';', '=', '\u0000', '\u007f', '\u00a0', '\u00ff', '\u0100', '\r'), fc.string({ unit: 'binary', maxLength: 1 })), maxLength: 10 })
  fc.assert(fc.property(text, (s) => {
    const name = cookieNameProblem(s) === null
    const value = cookieValueProblem(s) === null
    const carried = HEADER_VALUE.test(s) && !/[\x00-\x1f\x7f;]/.test(s) && !/^[ \t]|[ \t]$/.test(s)
    return (!value || carried) && (!name || (carried && s !== '' && !s.includes('='))) && (value === carried) && (name === (carried && s !== '' && !s.includes('=')))
  }), { seed: 3, numRuns: 2000 })
  t.pass('2000 runs held')
})
