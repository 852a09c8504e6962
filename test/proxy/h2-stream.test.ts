/** The HTTP/2 adapter (src/proxy/h2-stream.ts) against a real node:http2 server and client. */
import http2 from 'node:http2'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { asH1Request, H2Response, h1RawHeaders } from '../../src/proxy/h2-stream.js'

t.test('h1RawHeaders: no pseudo-headers, Host from :authority, chunked for a body without length', async (t) => {
  const raw = [':method', 'POST', ':path', '/x', ':authority', 'app.test:8443', ':scheme', 'https', 'cookie', 'a=1', 'cookie', 'b=2', 'user-agent', 'ua']
  t.same(h1RawHeaders(raw, false), ['host', 'app.test:8443', 'cookie', 'a=1', 'cookie', 'b=2', 'user-agent', 'ua'])
  t.same(h1RawHeaders(raw, true), ['host', 'app.test:8443', 'cookie', 'a=1', 'cookie', 'b=2', 'user-agent', 'ua', 'transfer-encoding', 'chunked'], 'a body follows: announced as chunked')
  t.same(h1RawHeaders([...raw, 'content-length', '5'], true).slice(-2), ['content-length', '5'], 'a Content-Length is kept and nothing added')
  t.same(h1RawHeaders([':authority', 'a.test', 'host', 'b.test'], false), ['host', 'b.test'], 'a Host of the client\'s own is kept')
  t.same(h1RawHeaders([':path', '/'], false), [], 'no :authority, no Host')
})

/** A real HTTP/2 server using the adapter, and one request to it. */
async function exchange (onRequest: (req: http2.Http2ServerRequest, res: H2Response) => void, headers: http2.OutgoingHttpHeaders = { ':path': '/' }, body?: string): Promise<{ head: http2.IncomingHttpHeaders, body: string }> {
  const server = http2.createServer({ Http2ServerResponse: H2Response }, (req, res) => onRequest(req, res as H2Response))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const client = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)
  try {
    return await new Promise((resolve, reject) => {
      const s = client.request(headers, { endStream: body === undefined })
      let head: http2.IncomingHttpHeaders = {}
      const chunks: Buffer[] = []
      s.on('response', (h) => { head = h })
      s.on('data', (c: Buffer) => chunks.push(c))
      s.on('end', () => resolve({ head, body: Buffer.concat(chunks).toString() }))
      s.on('error', reject)
      if (body !== undefined) s.end(body)
    })
  } finally {
    client.close()
    await new Promise<void>((resolve) => server.close(() => resolve()))
  }
}

t.test('H2Response.writeHead takes the HTTP/1.1 path\'s flat lists and reason phrases', async (t) => {
  const warnings: string[] = []
  const onWarning = (w: Error): void => { warnings.push(w.message) }
  process.on('warning', onWarning)
  t.teardown(() => { process.off('warning', onWarning) })
  const r = await exchange((_req, res) => {
    res.statusMessage = ''
    res.writeHead(203, 'Custom Reason', ['Connection', 'close', 'Keep-Alive', 'timeout=5', 'Transfer-Encoding', 'chunked', 'Upgrade', 'h2c', 'Proxy-Connection', 'x', 'X-Ok', '1', 'Set-Cookie', 'a=1', 'set-cookie', 'b=2'])
    res.end('body')
  })
  t.equal(r.head[':status'], 203)
  t.equal(r.head['x-ok'], '1')
  t.same(r.head['set-cookie'], ['a=1', 'b=2'], 'repeated headers stay repeated')
  for (const name of ['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection']) t.notOk(r.head[name], `no ${name}`)
  t.equal(r.body, 'body')
  await new Promise((resolve) => setImmediate(resolve))
  t.same(warnings, [], 'no warning about status messages')

  const obj = await exchange((_req, res) => {
    res.writeHead(501, { 'content-type': 'text/plain', connection: 'close', 'x-session-proxy-error': 'SP_X' })
    res.end('no')
  })
  t.equal(obj.head[':status'], 501)
  t.equal(obj.head['x-session-proxy-error'], 'SP_X', 'the object form (sendProxyError) works too')
  t.notOk(obj.head.connection)
})

t.test('asH1Request gives the HTTP/1.1-shaped rawHeaders and keeps the body readable', async (t) => {
  let seen: string[] = []
  const r = await exchange((req, res) => {
    const h1 = asH1Request(req)
    seen = h1.rawHeaders
    const chunks: Buffer[] = []
    h1.on('data', (c: Buffer) => chunks.push(c))
    h1.on('end', () => { res.writeHead(200, []); res.end(`${h1.method!} ${h1.url!} ${Buffer.concat(chunks).toString()}`) })
  }, { ':method': 'POST', ':path': '/p?q=1', 'x-a': 'b' }, 'payload')
  t.equal(r.body, 'POST /p?q=1 payload')
  t.match(seen, ['host', /^127\.0\.0\.1:\d+$/, 'x-a', 'b', 'transfer-encoding', 'chunked'])
  t.notOk(seen.some((n) => n.startsWith(':')), 'no pseudo-headers')
})
