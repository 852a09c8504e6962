/**
 * Properties over cookies.txt files imported with
 * `PUT /_session/profiles/{p}/cookies.txt`:
 * - the proxy keeps running and lets no error escape;
 * - the answer is 200 or a 4xx (the file is the client's), never 5xx;
 * - a refused import changes nothing (the profile keeps the cookie it had);
 * - an accepted import is sendable: the profile's next request is answered
 *   200 with a valid Cookie header, and another profile receives none of it.
 */
import fc from 'fast-check'
import t from 'tap'
import { adminGet } from '../helpers/proxy.js'
import { checkProperty, fuzzParams, isValidFieldValue, knownFailure, proxiedGet, ProxyUnderTest, showBytes, startRawUpstream, raiseTimeoutForLongRuns } from '../helpers/fuzz-harness.js'

const SEED_LINE = '127.0.0.1\tFALSE\t/\tFALSE\t0\tseed\tkeep\n'
const soon = Math.floor(Date.now() / 1000) + 3600

const anyChar = fc.oneof(
  { weight: 3, arbitrary: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 0x2fff }).map((c) => String.fromCharCode(c)) },
  { weight: 1, arbitrary: fc.constantFrom('€', 'ü', '\t', '\r', '\x00', '\x7f', '\ufeff', '😀', '\ud800', ';', '"', ',', ' ') }
)
const odd = (maxLength: number): fc.Arbitrary<string> => fc.string({ unit: anyChar, maxLength })

const domain = fc.oneof(
  { weight: 12, arbitrary: fc.constantFrom('127.0.0.1', '.127.0.0.1', '#HttpOnly_127.0.0.1', '#HttpOnly_.127.0.0.1') },
  { weight: 3, arbitrary: fc.constantFrom('localhost', '[::1]', 'example.com', '', 'EXAMPLE.com', 'ex ample', '..', '#HttpOnly_') },
  { weight: 1, arbitrary: odd(12) }
)
const expires = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('0', String(soon)) },
  { weight: 5, arbitrary: fc.constantFrom('-1', '1', '99999999999', '253402300799', '253402300800', '8640000000000', '8640000000001', '99999999999999999999', '1e10', '', ' 0', '0x10', String(soon) + '.5') },
  { weight: 1, arbitrary: fc.bigInt({ min: -(10n ** 20n), max: 10n ** 22n }).map(String) }
)
const name = fc.oneof({ weight: 8, arbitrary: fc.constantFrom('a', 'JSESSIONID', '__Host-x', 'constructor', '__proto__', 'seed') }, { weight: 2, arbitrary: fc.constantFrom('', 'a b', 'é', 'a=b') }, { weight: 1, arbitrary: odd(8) })
const value = fc.oneof({ weight: 5, arbitrary: fc.constantFrom('1', '', '€', 'ü', '"q"', 'a b', 'x'.repeat(5000), '\t', 'a,b', '\x7f', '\ufeff', ' x ') }, { weight: 2, arbitrary: odd(20) })
const fields = fc.tuple(
  domain,
  fc.oneof({ weight: 5, arbitrary: fc.constantFrom('TRUE', 'FALSE') }, { weight: 1, arbitrary: fc.constantFrom('true', 'yes', '', 'TRUE ') }),
  fc.oneof({ weight: 5, arbitrary: fc.constantFrom('/', '/echo', '/x/') }, { weight: 1, arbitrary: fc.constantFrom('', 'x', '/€', '//', '/%00') }),
  fc.oneof({ weight: 5, arbitrary: fc.constantFrom('TRUE', 'FALSE') }, { weight: 1, arbitrary: fc.constantFrom('false', '1') }),
  expires,
  name,
  value
)
const line = fc.oneof(
  { weight: 8, arbitrary: fields.map((f) => f.join('\t')) },
  { weight: 1, arbitrary: fields.map((f) => f.slice(0, 6).join('\t')) },
  { weight: 1, arbitrary: fields.map((f) => [...f, 'extra'].join('\t')) },
  { weight: 1, arbitrary: fc.constantFrom('# comment', '', '   ', '#HttpOnly_', '\t\t\t\t\t\t') },
  { weight: 1, arbitrary: odd(40) }
)
const file = fc.record({
  bom: fc.oneof({ weight: 5, arbitrary: fc.constant('') }, { weight: 1, arbitrary: fc.constant('\ufeff') }),
  lines: fc.array(line, { minLength: 1, maxLength: 3 }),
  eol: fc.constantFrom('\n', '\r\n', '\r')
}).map((f) => f.bom + f.lines.join(f.eol) + f.eol)

let counter = 0

raiseTimeoutForLongRuns(t)

t.test('cookies.txt imports', knownFailure('an out-of-range expiry answers 500 after the jar was cleared; a value like € is imported and makes every later request 502'), async (t) => {
  const up = await startRawUpstream()
  const put = new ProxyUnderTest()
  await put.start()
  t.teardown(async () => { await put.stop(); await up.close() })
  await checkProperty(t, 'imports are whole, sendable, isolated, and never 5xx', file, async (text) => {
    const proxy = await put.ensure()
    const n = ++counter
    const p = `ta${n}`
    const other = `tb${n}`
    const problems: string[] = []
    const putTxt = async (body: string): Promise<{ status: number, body: string }> => {
      const r = await fetch(`${proxy.url}/_session/profiles/${p}/cookies.txt`, { method: 'PUT', body, headers: { 'content-type': 'text/plain; charset=utf-8' } })
      return { status: r.status, body: await r.text() }
    }
    const seeded = await putTxt(SEED_LINE)
    if (seeded.status !== 200) problems.push(`seeding answered ${seeded.status}`)
    const r = await putTxt(text).catch((err: Error) => ({ status: 0, body: err.message }))
    if (r.status >= 500 || r.status === 0) problems.push(`PUT cookies.txt answered ${r.status}: ${r.body.slice(0, 300)}`)
    if (r.status >= 400 && r.status < 500) {
      const listing = await adminGet(proxy, `/_session/profiles/${p}/cookies`)
      const cookies = (listing.json as { cookies?: Array<{ name: string, value: string }> } | null)?.cookies ?? []
      if (!cookies.some((c) => c.name === 'seed' && c.value === 'keep')) problems.push(`a refused import (${r.status}) changed the jar: ${listing.body.slice(0, 200)}`)
    }
    if (put.alive) {
      const before = up.requests.length
      const echo = await proxiedGet(proxy.port, `${up.origin}/echo/`, p)
      if (echo.status !== 200) problems.push(`the profile's next request was answered ${echo.status}: ${JSON.stringify(echo.head.slice(0, 200))}`)
      for (const req of up.requests.slice(before)) for (const c of req.cookies) if (!isValidFieldValue(c)) problems.push(`sent an invalid Cookie header: ${showBytes(c)}`)
      const mid = up.requests.length
      const echoB = await proxiedGet(proxy.port, `${up.origin}/echo/`, other)
      if (echoB.status !== 200) problems.push(`another profile's request was answered ${echoB.status}`)
      for (const req of up.requests.slice(mid)) if (req.cookies.length > 0) problems.push(`profile ${other} was sent ${showBytes(Buffer.concat(req.cookies))}`)
    }
    problems.push(...await put.check())
    if (problems.length > 0) throw new Error(problems.join('; '))
  }, fuzzParams(80, 8_000), (text) => `PUT body (UTF-8) ${JSON.stringify(text)}`)
})
