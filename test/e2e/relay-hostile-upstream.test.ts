/**
 * Relaying what hostile or sloppy upstreams send (issue 9, "Correct
 * relaying"): tiny raw-socket upstreams write exact bytes, real curl goes
 * through the real proxy.
 */
import net from 'node:net'
import t from 'tap'
import { cleanup, curl, run, startProxy, startUpstream, type ProxyProcess } from '../helpers/proxy.js'
import { answer, startRawUpstream, type RawResponder } from '../helpers/raw-upstream.js'

const OK = 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'

const errorCode = (head: string): string | undefined => /x-session-proxy-error: (\S+)/i.exec(head)?.[1]

/** curl -i through the proxy: status, the whole output (head and body), and the error code header. */
async function get (proxy: ProxyProcess, url: string, extra: string[] = []): Promise<{ status: number, out: string, code: string | undefined }> {
  const r = await curl(['-i', '-x', proxy.url, ...extra, url])
  return { status: r.status, out: r.stdout, code: errorCode(r.stdout) }
}

/** Several URLs in one curl run (one client connection); one `[status connects]` line per transfer. */
async function getMany (proxy: ProxyProcess, urls: string[]): Promise<string> {
  const r = await run('curl', ['-s', '-S', '-i', '--max-time', '20', '-x', proxy.url, '-w', '[%{http_code} %{num_connects}]\n', ...urls])
  return r.stdout.toString('latin1')
}

t.test('hostile upstream responses', async (t) => {
  const proxy = await startProxy()
  t.teardown(async () => { await proxy.stop(); cleanup(proxy.dataDir) })

  t.test('upstream parser errors are SP_UPSTREAM_BAD_RESPONSE, not SP_UPSTREAM_ERROR', async (t) => {
    const cases: Record<string, string> = {
      'a malformed status line': 'HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n',
      'bare-LF framing': 'HTTP/1.1 200 OK\nContent-Length: 2\n\nok',
      'a control character in a header value': 'HTTP/1.1 200 OK\r\nX-A: a\x01b\r\nContent-Length: 2\r\n\r\nok',
      'an invalid Content-Length': 'HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nok',
      'a status code below 100': 'HTTP/1.1 099 Odd\r\nContent-Length: 2\r\n\r\nok',
      'an unsolicited 100 Continue': 'HTTP/1.1 100 Continue\r\n\r\n' + OK,
      'a 101 nobody asked for': 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n',
      'not HTTP at all': 'hello world\r\n'
    }
    for (const [name, bytes] of Object.entries(cases)) {
      const up = await startRawUpstream(answer(bytes))
      const r = await get(proxy, `${up.origin}/`)
      await up.close()
      t.equal(r.status, 502, `${name}: 502`)
      t.equal(r.code, 'SP_UPSTREAM_BAD_RESPONSE', `${name}: SP_UPSTREAM_BAD_RESPONSE`)
    }
  })

  t.test('a 304 with Content-Length reaches the client with it, and the client connection stays usable', async (t) => {
    const up = await startRawUpstream((socket, req) => {
      if (req.head.startsWith('GET /a ')) socket.write('HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nContent-Length: 50\r\n\r\n')
      else socket.write(OK)
    })
    t.teardown(async () => await up.close())
    const out = await getMany(proxy, [`${up.origin}/a`, `${up.origin}/b`])
    t.match(out, /^HTTP\/1\.1 304 Not Modified\r\n/, 'the 304 itself')
    t.match(out, /\r\nContent-Length: 50\r\n/i, 'Content-Length kept as metadata (RFC 9110 8.6)')
    t.match(out, /\r\nETag: "v1"\r\n/i)
    t.match(out, /\[304 1\]\n/)
    t.match(out, /\r\n\r\nok\[200 0\]\n/, 'the next request on the same client connection is answered')
  })

  t.test('a 204 with a body reaches the client without it', async (t) => {
    const up = await startRawUpstream((socket, req) => {
      if (req.head.startsWith('GET /a ')) socket.write('HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello')
      else socket.write(OK)
    })
    t.teardown(async () => await up.close())
    const out = await getMany(proxy, [`${up.origin}/a`, `${up.origin}/b`])
    t.match(out, /^HTTP\/1\.1 204 No Content\r\n/)
    t.notMatch(out.slice(0, out.indexOf('[204')), /content-length|hello/i, 'no Content-Length, no body on the 204')
    t.match(out, /\[204 1\]\n/)
    t.match(out, /\r\n\r\nok\[200 0\]\n/, 'the next request on the same client connection is answered')
    t.notMatch(out, /hello/, 'the stray bytes never reach the client')
  })

  t.test('HEAD keeps Content-Length and sends no body', async (t) => {
    const up = await startRawUpstream(answer('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n'))
    t.teardown(async () => await up.close())
    const r = await get(proxy, `${up.origin}/`, ['-I'])
    t.equal(r.status, 200)
    t.match(r.out, /\r\ncontent-length: 100\r\n/i)
  })

  t.test('a reason phrase Node will not write gives the default one, not a hang', async (t) => {
    const up = await startRawUpstream(answer('HTTP/1.1 200 O\x7fK\r\nContent-Length: 2\r\n\r\nok'))
    t.teardown(async () => await up.close())
    const r = await get(proxy, `${up.origin}/`, ['--max-time', '5'])
    t.equal(r.status, 200, r.out)
    t.match(r.out, /^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nok$/)
  })
})

t.test('upstreams that close the connection right after the response', async (t) => {
  const proxy = await startProxy()
  t.teardown(async () => { await proxy.stop(); cleanup(proxy.dataDir) })
  let n = 0

  for (const [name, head] of [
    ['Connection: close', () => `HTTP/1.1 302 Found\r\nLocation: /home\r\nSet-Cookie: sid=${++n}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`],
    ['no Connection header (as tinyproxy answers)', () => `HTTP/1.1 302 Found\r\nLocation: /home\r\nSet-Cookie: sid=${++n}\r\nContent-Length: 0\r\n\r\n`],
    ['HTTP/1.0, body up to the close', () => `HTTP/1.0 302 Found\r\nLocation: /home\r\nSet-Cookie: sid=${++n}\r\n\r\nmoved`]
  ] as Array<[string, () => string]>) {
    t.test(`a cookie-setting redirect, then FIN: ${name}`, async (t) => {
      const up = await startRawUpstream((socket) => { socket.end(head()) })
      t.teardown(async () => await up.close())
      for (let i = 0; i < 2; i++) {
        const r = await get(proxy, `${up.origin}/login`)
        t.equal(r.status, 302, `request ${i + 1}: the redirect arrives (the jar write held it)`)
        t.match(r.out, /\r\nLocation: \/home\r\n/)
        t.match(r.out, new RegExp(`\\r\\nSet-Cookie: sid=${n}\\r\\n`))
      }
      t.equal(proxy.proc.exitCode, null, 'the proxy is still running')
    })
  }

  t.test('a slow client and an upstream that closes after the last byte get the whole body', async (t) => {
    // A proxy of its own: the redirect cases above crash the proxy without the fix.
    const proxy = await startProxy()
    t.teardown(async () => { await proxy.stop(); cleanup(proxy.dataDir) })
    const body = Buffer.alloc(4 << 20, 0x61)
    const up = await startRawUpstream((socket) => {
      socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`)
      socket.end(body)
    })
    t.teardown(async () => await up.close())
    for (let i = 0; i < 3; i++) {
      const received = await new Promise<number>((resolve, reject) => {
        const c = net.connect(proxy.port, '127.0.0.1')
        let bytes = 0
        c.on('error', reject)
        c.write(`GET ${up.origin}/big HTTP/1.1\r\nHost: 127.0.0.1:${up.port}\r\nConnection: close\r\n\r\n`)
        // Not reading for a while: the proxy's writes back up, undici pauses, the upstream closes.
        c.pause()
        setTimeout(() => { c.on('data', (d: Buffer) => { bytes += d.length }); c.resume() }, 300)
        c.on('end', () => resolve(bytes))
      })
      t.ok(received > body.length, `request ${i + 1}: the whole body arrived (${received} bytes with the head)`)
    }
    t.equal(proxy.proc.exitCode, null, 'the proxy is still running')
  })
})

t.test('an upstream that closes a reused keep-alive connection', async (t) => {
  const proxy = await startProxy()
  t.teardown(async () => { await proxy.stop(); cleanup(proxy.dataDir) })

  /** Answers the first request of each connection keep-alive; `onReuse` handles the later ones. */
  const closesOnReuse = (onReuse: RawResponder): RawResponder => (socket, req) => {
    if (req.indexOnConnection === 0) socket.write(OK)
    else onReuse(socket, req)
  }

  for (const [how, close] of [['closes (FIN)', (s) => { s.end() }], ['resets (RST)', (s) => { s.resetAndDestroy() }]] as Array<[string, RawResponder]>) {
    t.test(`an idempotent request is sent once more on a fresh connection when the upstream ${how}`, async (t) => {
      const up = await startRawUpstream(closesOnReuse(close))
      t.teardown(async () => await up.close())
      for (let i = 0; i < 4; i++) {
        const r = await get(proxy, `${up.origin}/n${i}`)
        t.equal(r.status, 200, `GET ${i + 1}: 200`)
        t.match(r.out, /\r\n\r\nok$/)
      }
      const head = await get(proxy, `${up.origin}/head`, ['-X', 'DELETE'])
      t.equal(head.status, 200, 'DELETE without a body is idempotent too')
    })
  }

  t.test('never retried once a response byte arrived', async (t) => {
    const up = await startRawUpstream(closesOnReuse((s) => { s.write('HTTP/1.1 200 OK\r\nContent-Len'); s.destroy() }))
    t.teardown(async () => await up.close())
    t.equal((await get(proxy, `${up.origin}/first`)).status, 200)
    const r = await get(proxy, `${up.origin}/second`)
    t.equal(r.status, 502)
    t.equal(up.requests.filter((q) => q.head.startsWith('GET /second ')).length, 1, 'sent once')
  })

  t.test('a request with a body is never retried', async (t) => {
    const up = await startRawUpstream(closesOnReuse((s) => { s.end() }))
    t.teardown(async () => await up.close())
    t.equal((await get(proxy, `${up.origin}/first`)).status, 200)
    const r = await get(proxy, `${up.origin}/put`, ['-X', 'PUT', '--data-binary', 'payload'])
    t.equal(r.status, 502)
    t.equal(r.code, 'SP_UPSTREAM_RESET')
    t.equal(up.requests.filter((q) => q.head.startsWith('PUT /put ')).length, 1, 'sent once')
  })

  t.test('a fresh connection closed without an answer is not retried', async (t) => {
    const up = await startRawUpstream((s) => { s.end() })
    t.teardown(async () => await up.close())
    const r = await get(proxy, `${up.origin}/`)
    t.equal(r.status, 502)
    t.equal(up.requests.length, 1, 'one attempt')
  })
})

t.test('configured default headers cannot break the request framing', async (t) => {
  const up = await startUpstream((_req, res) => { res.end('ok') })
  const proxy = await startProxy({
    config: {
      hosts: [
        {
          match: '127.0.0.1',
          headers: { Expect: '100-continue', Upgrade: 'h2c', 'Keep-Alive': 'timeout=5', 'Transfer-Encoding': 'chunked', 'Content-Length': '5', Host: 'elsewhere.example', Connection: 'close', 'X-Tenant': 'acme' }
        },
        { match: 'localhost', headers: { 'X-Bad': 'a\u007fb' } }
      ]
    }
  })
  t.teardown(async () => { await proxy.stop(); await up.close(); cleanup(proxy.dataDir) })
  const r = await get(proxy, `${up.origin}/`)
  t.equal(r.status, 200, r.out)
  const seen = up.requests.at(-1)!.headers
  t.equal(seen['x-tenant'], 'acme', 'an ordinary default is sent')
  t.equal(seen.host, `127.0.0.1:${up.port}`)
  for (const name of ['expect', 'upgrade', 'keep-alive', 'transfer-encoding', 'content-length']) t.notOk(seen[name], `no ${name} from the defaults`)

  const bad = await get(proxy, `http://localhost:${up.port}/`)
  t.equal(bad.status, 400, 'a default value the HTTP client cannot send is a clean refusal')
  t.equal(bad.code, 'SP_REQUEST_NOT_FORWARDABLE')
  t.match(bad.out, /x-bad/i, 'naming the header')
})

t.test('the managed (autopilot) path relays 304 and 204 the same way', async (t) => {
  const up = await startRawUpstream((socket, req) => {
    if (req.head.startsWith('GET /a ')) socket.write('HTTP/1.1 304 Not Modified\r\nETag: "v1"\r\nContent-Length: 50\r\n\r\n')
    else if (req.head.startsWith('GET /b ')) socket.write('HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello')
    else socket.write(OK)
  })
  const proxy = await startProxy({ config: { profiles: { managed: { autopilot: [{ match: '127.0.0.1', loggedOut: { status: [401] } }] } } } })
  t.teardown(async () => { await proxy.stop(); await up.close(); cleanup(proxy.dataDir) })
  const r = await run('curl', ['-s', '-S', '-i', '--max-time', '20', '-x', proxy.url, '-H', 'X-Session-Profile: managed', '-w', '[%{http_code} %{num_connects}]\n', `${up.origin}/a`, `${up.origin}/b`, `${up.origin}/c`])
  const out = r.stdout.toString('latin1')
  t.match(out, /^HTTP\/1\.1 304 Not Modified\r\n[^]*\r\nContent-Length: 50\r\n/i, 'the 304 with its Content-Length')
  t.match(out, /\[304 1\]\nHTTP\/1\.1 204 No Content\r\n/)
  t.notMatch(out, /hello/)
  t.match(out, /\[204 0\]\n[^]*\r\n\r\nok\[200 0\]\n/, 'one client connection throughout')
})
