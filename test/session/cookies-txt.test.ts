/**
 * cookies.txt parsing (src/session/cookies-txt.ts): the file is validated
 * whole with the jar's own rules, so an import either changes nothing or
 * brings only cookies the jar can send.
 */
import t from 'tap'
import { Cookie } from 'tough-cookie'
import { parseCookiesTxt, toCookiesTxt } from '../../src/session/cookies-txt.js'
import { MAX_EXPIRY_MS } from '../../src/session/sendable.js'

const row = (...f: string[]): string => f.join('\t')

t.test('a value or name a Cookie header cannot carry fails the whole file, naming the line', async (t) => {
  const text = [
    '# Netscape HTTP Cookie File',
    row('h.test', 'FALSE', '/', 'FALSE', '0', 'ok', '1'),
    row('h.test', 'FALSE', '/', 'FALSE', '0', 'euro', '\u20ac'),
    row('h.test', 'FALSE', '/', 'FALSE', '0', 'n\u20ac', '1'),
    row('h.test', 'FALSE', '/', 'FALSE', '0', 'cr', 'a\rb'),
    row('h.test', 'FALSE', '/', 'FALSE', '0', 'del', 'a\u007f'),
    row('h.test', 'FALSE', '/a\u0001', 'FALSE', '0', 'p', '1'),
    row('h.test', 'FALSE', '/', 'FALSE', '0', 'a=b', '1')
  ].join('\n')
  t.throws(() => parseCookiesTxt(text), {
    code: 'SP_COOKIES_TXT_INVALID',
    statusCode: 400,
    message: /nothing imported:\nline 3: cookie value cannot be sent in a Cookie header: it contains "€" \(U\+20AC\).*\nline 4: invalid cookie name "n€".*\nline 5: .*control character U\+000D.*\nline 6: .*U\+007F.*\nline 7: Cookie attribute path cannot be stored.*\nline 8: invalid cookie name "a=b"/s
  })
})

t.test('an expiry beyond year 9999 is clamped, not a failure', async (t) => {
  const parsed = parseCookiesTxt([
    row('h.test', 'FALSE', '/', 'FALSE', '99999999999999', 'far', '1'),
    row('h.test', 'FALSE', '/', 'FALSE', '9'.repeat(400), 'farther', '1'),
    row('h.test', 'FALSE', '/', 'FALSE', '2000000000', 'normal', '1')
  ].join('\n'))
  t.same(parsed.cookies.map((c) => c.expiryTime()), [MAX_EXPIRY_MS, MAX_EXPIRY_MS, 2000000000 * 1000])
  t.match(toCookiesTxt(parsed.cookies), /\t253402300799\tfar\t1\n/)
})

t.test('a BOM does not spoil the first line', async (t) => {
  const parsed = parseCookiesTxt('\uFEFF' + row('h.test', 'FALSE', '/', 'FALSE', '0', 'a', '1') + '\n')
  t.equal(parsed.cookies.length, 1)
})

t.test('every cookie the jar can hold survives export and import', async (t) => {
  const names = ['@a', '(a', '"a', 'foo bar', 'a,b', 'caf\u00e9']
  const cookies = names.map((key, i) => new Cookie({ key, value: i % 2 === 0 ? '\u00e6\u0098\u00a5' : 'x=y', domain: 'h.test', path: '/', hostOnly: true }))
  const again = parseCookiesTxt(toCookiesTxt(cookies)).cookies
  t.same(again.map((c) => [c.key, c.value]), cookies.map((c) => [c.key, c.value]))
})
