/**
 * Property: whatever request head a client sends (methods, targets, header
 * names and values, smuggling shapes, odd bytes, sizes), and however it
 * leaves (FIN or RST, after a refusal), the proxy keeps running, lets no
 * error escape, and never answers 5xx: the upstream here is a well-behaved
 * Node http server, so every mistake is the client's.
 *
 * 501 (a method or upgrade the server does not implement) and 505 (an HTTP
 * version it does not support) are the statuses RFC 9110 15.6.2 / 15.6.6
 * name for exactly those client requests, so they are not counted.
 */
import fc from 'fast-check'
import t from 'tap'
import { echoCookies, startUpstream } from '../helpers/proxy.js'
import { checkProperty, fuzzParams, knownFailure, ProxyUnderTest, rawExchange, showBytes, type Ending, raiseTimeoutForLongRuns } from '../helpers/fuzz-harness.js'

const ALLOWED_5XX = new Set([501, 505])

interface Head {
  method: string
  target: string
  version: string
  hostHeader: boolean
  headers: Array<{ name: string, sep: string, value: string, eol: string }>
  body: string
  ending: Ending
}

function render (h: Head): Buffer {
  let text = `${h.method} ${h.target} ${h.version}\r\n`
  if (h.hostHeader) text += 'Host: 127.0.0.1\r\n'
  for (const x of h.headers) text += `${x.name}${x.sep}${x.value}${x.eol}`
  text += '\r\n' + h.body
  return Buffer.from(text, 'latin1')
}

/** Any byte 0-255, as a latin1 character. */
const byteChar = fc.integer({ min: 0, max: 255 }).map((b) => String.fromCharCode(b))
const oddString = (maxLength: number): fc.Arbitrary<string> => fc.string({ unit: byteChar, maxLength })
const tokenChar = fc.constantFrom(...'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&\'*+-.^_`|~'.split(''))
const token = (maxLength: number): fc.Arbitrary<string> => fc.string({ unit: tokenChar, minLength: 1, maxLength })
/** Sizes around the usual limits: 8 KiB (Node's default), 16 KiB, 64 KiB (limits.maxHeaderBytes). */
const big = fc.constantFrom(1000, 8190, 16385, 65537, 70000).chain((n) => fc.constantFrom('a', 'x=1; ', '\t', '\x80').map((s) => s.repeat(Math.ceil(n / s.length)).slice(0, n)))

function headArb (upstreamPort: number): fc.Arbitrary<Head> {
  const origin = `http://127.0.0.1:${upstreamPort}`
  const method = fc.oneof(
    { weight: 6, arbitrary: fc.constant('GET') },
    { weight: 5, arbitrary: fc.constantFrom('POST', 'PUT', 'HEAD', 'OPTIONS', 'DELETE', 'PATCH', 'TRACE', 'PRI', 'get', 'CONNECT') },
    { weight: 1, arbitrary: token(12) },
    { weight: 1, arbitrary: oddString(8) }
  )
  const adminPath = fc.oneof(
    fc.constantFrom('/_session/health', '/_session/profiles', '/_session/metrics', '/_session/ca.pem', '/_session/', '/', '/x', '/_session/events'),
    fc.tuple(fc.constantFrom('cookies', 'cookies.txt', 'events', 'login', 'har', ''), fc.constantFrom('alice', 'a.b', '..', '%2e%2e', 'constructor', '__proto__', 'x'.repeat(70))).map(([what, p]) => `/_session/profiles/${p}/${what}`),
    fc.constantFrom('constructor', '__proto__', 'toString', 'hasOwnProperty', 'app.js', '..%2f..%2fpackage.json', '%00', 'valueOf').map((a) => `/_session/assets/${a}`),
    oddString(20).map((s) => `/_session/${s}`)
  )
  const target = fc.oneof(
    { weight: 6, arbitrary: fc.oneof(fc.webPath(), oddString(30).map((s) => '/' + s)).map((p) => origin + (p.startsWith('/') ? p : '/' + p)) },
    { weight: 4, arbitrary: adminPath },
    { weight: 2, arbitrary: adminPath.map((p) => origin + p) },
    {
      weight: 2,
      arbitrary: fc.constantFrom('ftp://x/', 'http://127.0.0.1:99999/', 'http://exa$mple.com/', 'http://user@127.0.0.1/', '*', 'http://', 'http://[::1/', 'https:/x', `ws://127.0.0.1:${upstreamPort}/`, `HTTP://127.0.0.1:${upstreamPort}/`, `http://127.0.0.1:${upstreamPort}`, `http://127.0.0.1:0${upstreamPort}/`, '127.0.0.1:443', `http://127.0.0.1:${upstreamPort}/?a=${'%'.repeat(3)}`, `http://127.0.0.1:${upstreamPort}#frag`)
    },
    { weight: 1, arbitrary: oddString(40) }
  )
  const version = fc.oneof({ weight: 8, arbitrary: fc.constant('HTTP/1.1') }, { weight: 2, arbitrary: fc.constantFrom('HTTP/1.0', 'HTTP/2.0', 'HTTP/0.9', 'HTTP/1.1 ', 'http/1.1', 'HTTP/1.10', '') })
  const name = fc.oneof(
    { weight: 12, arbitrary: fc.constantFrom('Content-Length', 'Transfer-Encoding', 'Connection', 'Upgrade', 'Expect', 'Host', 'Proxy-Authorization', 'X-Session-Profile', 'Via', 'TE', 'Trailer', 'Keep-Alive', 'Proxy-Connection', 'Cookie', 'Origin', 'Content-Type', 'Sec-WebSocket-Key', 'Sec-WebSocket-Version', 'Authorization', 'X-Forwarded-For', 'Forwarded', 'Max-Forwards', 'Range', 'If-None-Match', 'X-Session-Proxy-Error') },
    { weight: 2, arbitrary: token(20) },
    { weight: 1, arbitrary: oddString(10) },
    { weight: 1, arbitrary: fc.constantFrom('Content-Length ', ' Transfer-Encoding', 'Transfer-Encoding\x0b', 'Content\x00Length', '') }
  )
  const value = fc.oneof(
    {
      weight: 6,
      arbitrary: fc.constantFrom('chunked', ' chunked', 'chunked, identity', 'identity', 'gzip, chunked', 'xchunked', '0', '-1', '5', '10', '+5', '0x10', '99999999999999999999', '1, 2', 'websocket', 'h2c', 'close', 'keep-alive', 'Upgrade', 'keep-alive, Upgrade, Content-Length', '100-continue', 'Basic YWxpY2U6', 'Basic ' + Buffer.from('../x:').toString('base64'), 'Basic !!!', 'Bearer x', 'Basic', 'alice', 'bob', '../x', '', ' ', 'dGhlIHNhbXBsZSBub25jZQ==', '13', 'http://attacker.example', 'null', '1.1 session-proxy-00000000', 'a=1; b=2', 'bytes=0-0,-1', '\x80\xff', 'x\x00y', 'trailers')
    },
    { weight: 2, arbitrary: oddString(40) },
    { weight: 1, arbitrary: big }
  )
  const sep = fc.constantFrom(': ', ':', ' : ', ':\t', ': ', ':  ')
  const eol = fc.oneof({ weight: 30, arbitrary: fc.constant('\r\n') }, { weight: 1, arbitrary: fc.constantFrom('\n', '\r', '\r\n ', '\r\n\t', '\r\r\n') })
  const header = fc.record({ name, sep, value, eol })
  // Well-formed headers: the head reaches the proxy's own code instead of Node's parser.
  const knownName = fc.constantFrom('Content-Length', 'Transfer-Encoding', 'Connection', 'Upgrade', 'Expect', 'Host', 'Proxy-Authorization', 'X-Session-Profile', 'Via', 'TE', 'Trailer', 'Keep-Alive', 'Proxy-Connection', 'Cookie', 'Origin', 'Content-Type', 'Authorization', 'Forwarded', 'Max-Forwards', 'Range', 'If-None-Match', 'Accept-Encoding', 'X-Session-Proxy-Error', 'X-Forwarded-Host')
  const cleanValue = fc.oneof(fc.constantFrom('chunked', 'identity', '0', '5', 'close', 'keep-alive', 'Upgrade', 'websocket', '100-continue', 'Basic YWxpY2U6', 'Basic ' + Buffer.from('../x:').toString('base64'), 'Basic Ym9iOnNlY3JldA==', 'Bearer x', 'alice', 'bob', '../x', '', 'http://attacker.example', 'null', '1.1 session-proxy-00000000', 'a=1; b=2', 'bytes=0-0,-1', 'trailers', '*', 'gzip, br', 'keep-alive, x-session-profile, host', '\x80\xff'), fc.string({ unit: fc.constantFrom(...'abc=; ,/-_.'.split('')), maxLength: 20 }))
  const cleanHeader = fc.record({ name: knownName, sep: fc.constant(': '), value: cleanValue, eol: fc.constant('\r\n') })
  const ok = (name: string, value: string): { name: string, sep: string, value: string, eol: string } => ({ name, sep: ': ', value, eol: '\r\n' })
  // Shapes known to matter (upgrades, smuggling, Expect), whole, so they are not left to chance.
  const shape = fc.constantFrom(
    [ok('Connection', 'Upgrade'), ok('Upgrade', 'websocket'), ok('Sec-WebSocket-Key', 'dGhlIHNhbXBsZSBub25jZQ=='), ok('Sec-WebSocket-Version', '13')],
    [ok('Connection', 'Upgrade'), ok('Upgrade', 'h2c')],
    [ok('Content-Length', '5'), ok('Transfer-Encoding', 'chunked')],
    [ok('Content-Length', '5'), ok('Content-Length', '6')],
    [ok('Transfer-Encoding', 'chunked'), ok('Transfer-Encoding', 'chunked')],
    [ok('Expect', '100-continue'), ok('Content-Length', '5')],
    [ok('Content-Length', '100')],
    [ok('X-Session-Profile', 'alice'), ok('Proxy-Authorization', 'Basic Ym9iOg==')],
    [ok('Origin', 'http://attacker.example'), ok('Content-Type', 'text/plain')]
  )
  const headers = fc.oneof(
    { weight: 3, arbitrary: fc.array(cleanHeader, { maxLength: 5 }) },
    { weight: 2, arbitrary: fc.tuple(shape, fc.array(cleanHeader, { maxLength: 2 })).map(([a, b]) => [...a, ...b]) },
    { weight: 2, arbitrary: fc.array(header, { maxLength: 5 }) }
  )
  const body = fc.oneof(
    { weight: 4, arbitrary: fc.constant('') },
    { weight: 2, arbitrary: fc.constantFrom('0\r\n\r\n', '5\r\nhello\r\n0\r\n\r\n', 'ffffffffffffffff\r\n', '3;x=y\r\nabc\r\n0\r\nX: y\r\n\r\n', 'hello', `GET http://127.0.0.1:${upstreamPort}/smuggled HTTP/1.1\r\nHost: x\r\n\r\n`, 'GET /_session/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n') },
    { weight: 1, arbitrary: oddString(100) }
  )
  return fc.record({
    method,
    target,
    version,
    hostHeader: fc.oneof({ weight: 4, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
    headers,
    body,
    ending: fc.constantFrom<Ending>('fin', 'rst')
  })
}

raiseTimeoutForLongRuns(t)

t.test('request heads', knownFailure('an upgrade refused then reset kills the process; /_session/assets/constructor answers 500'), async (t) => {
  // The proxy relays any path a client sends (`///%F1%83%95%A0/Y`, seed 7):
  // the test's own upstream answers 400 to one its URL parser refuses
  // instead of throwing in this process.
  const echo = echoCookies()
  const up = await startUpstream((req, res) => {
    try {
      echo(req, res)
    } catch {
      req.resume()
      res.writeHead(400)
      res.end()
    }
  })
  const put = new ProxyUnderTest()
  await put.start()
  t.teardown(async () => { await put.stop(); await up.close() })

  await checkProperty(t, 'no crash and no 5xx for any request head', headArb(up.port), async (h) => {
    const proxy = await put.ensure()
    const bytes = render(h)
    const r = await rawExchange(proxy.port, bytes, h.ending, { maxMs: 800 })
    const problems = await put.check()
    const bad = r.statuses.filter((s) => s >= 500 && !ALLOWED_5XX.has(s))
    if (bad.length > 0) {
      const text = r.data.toString('latin1')
      problems.push(`answered ${bad.join(', ')}: ${JSON.stringify(text.slice(0, 400))}`)
    }
    if (problems.length > 0) throw new Error(problems.join('; '))
  }, fuzzParams(300, 12_000), (h) => `${showBytes(render(h))} then ${h.ending.toUpperCase()}`)
})
