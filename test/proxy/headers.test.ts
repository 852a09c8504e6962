import t from 'tap'
import { buildRequestHeaders, buildResponseHeaders, relayableReason, scanRequestHeaders } from '../../src/proxy/headers.js'

const buffers = (flat: string[]): Buffer[] => flat.map((s) => Buffer.from(s, 'latin1'))

t.test('response headers: the one-pass way and the way for a Connection that names headers agree on the rules', async (t) => {
  const plain = buildResponseHeaders(buffers(['Server', 'nginx', 'Connection', 'keep-alive', 'Set-Cookie', 'sid=abc; Path=/', 'Via', '1.1 up', 'Keep-Alive', 'timeout=5', 'Content-Length', '3', 'Transfer-Encoding', 'chunked']), '1.1 me')
  t.same(plain.headers, ['Server', 'nginx', 'Set-Cookie', 'sid=abc; Path=/', 'Content-Length', '3', 'via', '1.1 up, 1.1 me'])
  t.same(plain.setCookies, ['sid=abc; Path=/'])

  // Connection names headers after (and before) it: they are dropped, a named Set-Cookie is never captured.
  const named = buildResponseHeaders(buffers(['X-Before', '1', 'Connection', 'x-before, Set-Cookie', 'Set-Cookie', 'a=1', 'X-After', '2', 'connection', 'X-After', 'Via', 'v', 'Date', 'today']), '1.1 me')
  t.same(named.headers, ['Date', 'today', 'via', 'v, 1.1 me'])
  t.equal(named.setCookies, null)

  const latin1 = buildResponseHeaders([Buffer.from('X-Name'), Buffer.from([0xe9, 0x41])], 'e')
  t.same(latin1.headers, ['X-Name', '\u00e9A', 'via', 'e'], 'bytes kept as latin1')
})

t.test('request headers: names of lengths the proxy never drops are copied as sent', async (t) => {
  const raw = ['Host', 'a', 'User-Agent', 'curl', 'Accept', '*/*', 'Proxy-Connection', 'keep-alive', 'Cookie', 'c=1', 'X-Session-Profile', 'p', 'Via', 'v', 'Authorization', 'Basic x', 'TE', 'trailers', 'Expect', '100-continue']
  const info = scanRequestHeaders(raw)
  t.same(buildRequestHeaders(raw, info, [], 'c=1; j=2', 'up:80', 'v, 1.1 me'), ['User-Agent', 'curl', 'Accept', '*/*', 'Authorization', 'Basic x', 'cookie', 'c=1; j=2', 'host', 'up:80', 'via', 'v, 1.1 me'])
  const withConnection = ['Connection', 'X-Private', 'X-Private', 's', 'Accept', '*/*']
  t.same(buildRequestHeaders(withConnection, scanRequestHeaders(withConnection), [], undefined, 'up', 'me'), ['Accept', '*/*', 'host', 'up', 'via', 'me'])
  t.same(buildRequestHeaders(['accept', 'x'], scanRequestHeaders(['accept', 'x']), [['accept', 'Accept', 'y'], ['x-d', 'X-D', '1'], ['host', 'Host', 'no']], undefined, 'up', 'me'), ['accept', 'x', 'X-D', '1', 'host', 'up', 'via', 'me'], 'defaults only where absent, never a framing header')
})

t.test('reason phrases', async (t) => {
  t.equal(relayableReason('OK'), 'OK')
  t.equal(relayableReason(''), undefined)
  t.equal(relayableReason('Fine\u0001'), undefined)
  t.equal(relayableReason('Created'), 'Created')
})
