/**
 * HTTP/2: offered by ALPN inside intercepted tunnels, where every stream
 * takes the HTTP/1.1 path (profile, jar, request ids); towards upstreams
 * with upstream.http2; h2c refused with 501 SP_H2C_UNSUPPORTED.
 */
import { createHash } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import http from 'node:http'
import http2 from 'node:http2'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import tls from 'node:tls'
import t from 'tap'
import { adminGet, cleanup, curl, echoCookies, run, startProxy, startUpstream, tempDir, type ProxyProcess } from '../helpers/proxy.js'
import { createTestCa, startHttpsUpstream, type TestCa } from '../helpers/tls.js'

async function proxyCaFile (proxy: ProxyProcess): Promise<{ file: string, pem: string }> {
  const r = await adminGet(proxy, '/_session/ca.pem')
  const file = join(tempDir('sp-cacert-'), 'proxy-ca.pem')
  writeFileSync(file, r.body)
  return { file, pem: r.body }
}

/** curl, with the HTTP version of each transfer on its own line after the body. */
async function curlVersion (args: string[]): Promise<{ out: string, err: string, code: number | null }> {
  const r = await run('curl', ['-s', '-S', '--max-time', '20', '-w', '\n%{http_version} %{http_code}\n', ...args])
  return { out: r.stdout.toString('utf8'), err: r.stderr, code: r.code }
}

/** A CONNECT tunnel through the proxy, answered 200. */
async function tunnel (proxy: ProxyProcess, authority: string, user?: string): Promise<import('node:net').Socket> {
  return await new Promise<import('node:net').Socket>((resolve, reject) => {
    const headers: Record<string, string> = { host: authority }
    if (user !== undefined) headers['proxy-authorization'] = `Basic ${Buffer.from(`${user}:`).toString('base64')}`
    const req = http.request({ host: '127.0.0.1', port: proxy.port, method: 'CONNECT', path: authority, headers, agent: false })
    req.once('connect', (res, sock) => res.statusCode === 200 ? resolve(sock) : reject(new Error(`CONNECT ${res.statusCode ?? 0}`)))
    req.once('error', reject)
    req.end()
  })
}

/** TLS with h2 by ALPN inside a tunnel, for writing raw frames. */
async function rawH2 (proxy: ProxyProcess, authority: string, ca: string): Promise<tls.TLSSocket> {
  const socket = await tunnel(proxy, authority)
  const [host] = authority.split(':')
  const secure = tls.connect({ socket, servername: host, ca, ALPNProtocols: ['h2'] })
  secure.on('error', () => {})
  await new Promise<void>((resolve, reject) => { secure.once('secureConnect', () => resolve()); secure.once('error', reject) })
  return secure
}

/** An HTTP/2 client session through a CONNECT tunnel of the proxy. */
async function h2Through (proxy: ProxyProcess, authority: string, ca: string, user?: string): Promise<http2.ClientHttp2Session> {
  const socket = await tunnel(proxy, authority, user)
  const [host] = authority.split(':')
  const session = http2.connect(`https://${authority}`, {
    createConnection: () => tls.connect({ socket, servername: host, ca, ALPNProtocols: ['h2'] })
  })
  session.on('error', () => {})
  // The proxy's SETTINGS arrive first: once they are in, remoteSettings is the proxy's.
  await new Promise<void>((resolve, reject) => { session.once('remoteSettings', () => resolve()); session.once('error', reject) })
  return session
}

interface H2Answer { status: number, headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader, body: Buffer }

async function h2Request (session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: Buffer | Buffer[]): Promise<H2Answer> {
  return await new Promise((resolve, reject) => {
    const stream = session.request(headers, { endStream: body === undefined })
    const chunks: Buffer[] = []
    let head: H2Answer['headers'] | null = null
    stream.on('response', (h) => { head = h })
    stream.on('data', (c: Buffer) => chunks.push(c))
    stream.on('end', () => resolve({ status: Number(head?.[':status'] ?? 0), headers: head!, body: Buffer.concat(chunks) }))
    stream.on('error', reject)
    if (body !== undefined) {
      const parts = Array.isArray(body) ? body : [body]
      let i = 0
      const next = (): void => {
        if (i === parts.length) { stream.end(); return }
        stream.write(parts[i++], () => setTimeout(next, 2))
      }
      next()
    }
  })
}

const cookieOf = (body: string | Buffer): string | null => (JSON.parse(body.toString()) as { cookie: string | null }).cookie

/** An upstream that answers echoCookies, or streams a body back (POST /echo), or dribbles (GET /slow), or answers once the whole body is in (POST /collect). */
function upstreamHandler (): http.RequestListener {
  const echo = echoCookies()
  return (req, res) => {
    if (req.url === '/echo') {
      const hash = createHash('sha256')
      let n = 0
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-request-te': String(req.headers['transfer-encoding'] ?? ''), 'x-request-length': String(req.headers['content-length'] ?? '') })
      req.on('data', (c: Buffer) => { n += c.length; hash.update(c); res.write(c) })
      req.on('end', () => { res.addTrailers({}); res.end(); void n })
      return
    }
    if (req.url === '/collect') {
      const chunks: Buffer[] = []
      req.on('data', (c: Buffer) => chunks.push(c))
      req.on('end', () => res.end(`got ${Buffer.concat(chunks).length}`))
      return
    }
    if (req.url === '/slow') {
      res.writeHead(200, { 'content-type': 'text/plain' })
      let i = 0
      const timer = setInterval(() => { if (res.destroyed || i++ > 200) { clearInterval(timer); res.end() } else res.write('x'.repeat(1024)) }, 10)
      res.on('close', () => clearInterval(timer))
      return
    }
    echo(req, res)
  }
}

t.test('HTTP/2 inside an intercepted tunnel', async (t) => {
  const ca = createTestCa()
  const up = await startHttpsUpstream(upstreamHandler(), ca)
  const proxy = await startProxy({ args: ['--upstream-ca', ca.file, '--connect-port', String(up.port)], config: { profiles: { alice: { capture: { enabled: true } } } } })
  const proxyCa = await proxyCaFile(proxy)
  t.teardown(async () => { await proxy.stop(); await up.close(); cleanup(proxy.dataDir, ca.dir) })
  const x = ['-x', proxy.url, '--cacert', proxyCa.file]

  t.test('curl --http2 gets HTTP/2, and the session is kept across streams and with HTTP/1.1', async (t) => {
    const set = encodeURIComponent('SID=h2; Path=/; Secure; HttpOnly')
    const r = await curlVersion([...x, '--http2', `${up.origin}/login?set=${set}`, `${up.origin}/next`])
    t.equal(r.code, 0, r.err)
    const lines = r.out.split('\n')
    t.same(lines.filter((l) => /^\d(\.\d)? \d{3}$/.test(l)), ['2 200', '2 200'], 'both transfers over HTTP/2, status 200')
    t.equal(cookieOf(lines[2]!), 'SID=h2', 'the cookie set on the first stream is sent on the next one')
    t.equal(up.requests.at(-1)!.headers.host, `localhost:${up.port}`, 'Host is the :authority (the CONNECT authority)')
    const h1 = await curlVersion([...x, '--http1.1', `${up.origin}/later`])
    t.match(h1.out, /\n1\.1 200\n$/, 'a later HTTP/1.1 request')
    t.equal(cookieOf(h1.out.split('\n')[0]!), 'SID=h2', 'is in the same session')
  })

  t.test('Node http2 client: the tunnel profile, many concurrent streams, one request id each', async (t) => {
    const session = await h2Through(proxy, `localhost:${up.port}`, proxyCa.pem, 'alice')
    t.teardown(() => session.close())
    const first = await h2Request(session, { ':path': `/?set=${encodeURIComponent('who=alice; Path=/')}` })
    t.equal(first.status, 200)
    t.match(String(first.headers.via), /session-proxy-/, 'the response carries the proxy\'s Via')
    const answers = await Promise.all(Array.from({ length: 60 }, async (_, i) => await h2Request(session, { ':path': `/n${i}` })))
    t.same(answers.map((a) => a.status), answers.map(() => 200), '60 concurrent streams, all 200')
    t.same(new Set(answers.map((a) => cookieOf(a.body))), new Set(['who=alice']), 'every stream in alice\'s session')
    const jar = await adminGet(proxy, '/_session/profiles/alice/cookies')
    t.match(jar.json, { cookies: [{ name: 'who', value: 'alice' }] }, 'the cookie is in the profile the CONNECT named')
    t.equal(cookieOf((await curl([...x, `${up.origin}/`])).stdout), 'SID=h2', 'the default profile is untouched')
    const ids = proxy.output.filter((l) => l.includes('"msg":"proxied"') && l.includes('"profile":"alice"')).map((l) => (JSON.parse(l) as { req: number }).req)
    t.equal(ids.length, 61, 'one access-log line per stream')
    t.equal(new Set(ids).size, 61, 'each with its own request id')
    const captured = ((await adminGet(proxy, '/_session/profiles/alice/exchanges?limit=100')).json as { exchanges: Array<{ requestId: number, url: string, status: number }> }).exchanges
    t.same(new Set(captured.map((e) => e.requestId)), new Set(ids), 'captured under the same request ids')
    t.ok(captured.some((e) => e.url === `https://localhost:${up.port}/n7` && e.status === 200), 'with the https:// URL the client asked for')
    const events = ((await adminGet(proxy, '/_session/profiles/alice/events?limit=100')).json as { events: Array<{ type: string, requestId: number | null }> }).events
    t.ok(events.some((e) => e.type === 'cookie.set' && e.requestId === Math.min(...ids)), 'the cookie event names the first stream\'s request id')
  })

  t.test('request and response bodies stream both ways', async (t) => {
    const session = await h2Through(proxy, `localhost:${up.port}`, proxyCa.pem)
    t.teardown(() => session.close())
    const parts = Array.from({ length: 64 }, (_, i) => Buffer.alloc(16 * 1024, i))
    const sent = Buffer.concat(parts)
    const r = await h2Request(session, { ':method': 'POST', ':path': '/echo' }, parts)
    t.equal(r.status, 200)
    t.equal(r.body.length, sent.length, '1 MiB back')
    t.ok(r.body.equals(sent), 'the same bytes')
    t.equal(r.headers['x-request-te'], 'chunked', 'a body without Content-Length goes upstream chunked')
    const sized = await h2Request(session, { ':method': 'PUT', ':path': '/echo', 'content-length': '5' }, Buffer.from('hello'))
    t.equal(sized.body.toString(), 'hello')
    t.equal(sized.headers['x-request-length'], '5', 'a Content-Length is kept')
  })

  t.test('refusals inside h2 carry x-session-proxy-error', async (t) => {
    const session = await h2Through(proxy, `localhost:${up.port}`, proxyCa.pem)
    t.teardown(() => session.close())
    const other = await h2Request(session, { ':path': '/', ':authority': 'elsewhere.example' })
    t.equal(other.status, 400)
    t.equal(other.headers['x-session-proxy-error'], 'SP_BAD_TARGET')
    t.match(other.body.toString(), /inside a tunnel to localhost/)
    const bad = await h2Request(session, { ':path': '/', 'proxy-authorization': 'Bearer x' })
    t.equal(bad.status, 400)
    t.equal(bad.headers['x-session-proxy-error'], 'SP_PROXY_AUTH_SCHEME', 'a profile refusal as over HTTP/1.1')
    const ok = await h2Request(session, { ':path': '/' })
    t.equal(ok.status, 200, 'the session goes on serving')
  })

  t.test('resets, GOAWAY, bad frames and huge headers do not hurt the proxy', async (t) => {
    // A stream cancelled mid-body, then a session torn down mid-body.
    const a = await h2Through(proxy, `localhost:${up.port}`, proxyCa.pem)
    await new Promise<void>((resolve) => {
      const s = a.request({ ':path': '/slow' })
      s.on('error', () => {})
      s.once('data', () => { s.close(http2.constants.NGHTTP2_CANCEL); resolve() })
    })
    await new Promise<void>((resolve) => {
      const s = a.request({ ':path': '/slow' })
      s.on('error', () => {})
      s.once('data', () => { a.goaway(http2.constants.NGHTTP2_PROTOCOL_ERROR); a.destroy(); resolve() })
    })
    // Bad frames after the preface: an unknown frame type, HEADERS whose
    // block is not HPACK, DATA on a stream never opened, a frame longer than
    // the peer allows, then plain garbage. Each on a fresh tunnel.
    const preface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n000000040000000000', 'latin1')
    const settings = Buffer.from('000000040000000000', 'hex')
    for (const hex of ['000004ff00000000017a7a7a7a', '000003010500000001ffffff', '0000030001000000074142 43'.replace(' ', ''), 'ffffff0000000000010000', '7a'.repeat(64)]) {
      const raw = await rawH2(proxy, `localhost:${up.port}`, proxyCa.pem)
      const answered = new Promise<number>((resolve) => {
        let n = 0
        raw.on('data', (c: Buffer) => { n += c.length })
        raw.once('close', () => resolve(n))
        setTimeout(() => resolve(n), 1000).unref()
      })
      raw.write(Buffer.concat([preface.subarray(0, 24), settings, Buffer.from(hex, 'hex')]))
      t.ok(await answered > 0, `bad frames ${hex.slice(0, 12)}…: the proxy answers (SETTINGS, GOAWAY or RST_STREAM)`)
      raw.destroy()
    }
    // A header list over limits.maxHeaderBytes is refused for that stream only.
    const c = await h2Through(proxy, `localhost:${up.port}`, proxyCa.pem)
    t.teardown(() => c.destroy())
    const big = await new Promise<string>((resolve) => {
      const s = c.request({ ':path': '/', 'x-big': 'a'.repeat(70_000) })
      s.on('response', (h) => resolve(`status ${String(h[':status'])}`))
      s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message))
      s.on('close', () => resolve(`closed ${s.rstCode ?? ''}`))
    })
    t.not(big, 'status 200', `an oversized head is not served (${big})`)
    const after = await h2Through(proxy, `localhost:${up.port}`, proxyCa.pem)
    t.teardown(() => after.close())
    t.equal((await h2Request(after, { ':path': '/' })).status, 200, 'the proxy goes on serving')
  })
})

/** An HTTP/2-only TLS upstream (no HTTP/1.1 fallback) that echoes the Cookie it gets. */
async function startH2OnlyUpstream (ca: TestCa): Promise<{ port: number, origin: string, versions: string[], close: () => Promise<void> }> {
  const { certPem, keyPem } = ca.issue(['localhost', '127.0.0.1'])
  const versions: string[] = []
  const server = http2.createSecureServer({ key: keyPem, cert: certPem }, (req, res) => {
    versions.push(req.httpVersion)
    const u = new URL(req.url, 'https://x')
    const headers: Record<string, string | string[]> = { 'content-type': 'application/json' }
    const set = u.searchParams.getAll('set')
    if (set.length > 0) headers['set-cookie'] = set
    res.writeHead(200, headers)
    res.end(JSON.stringify({ cookie: req.headers.cookie ?? null, path: u.pathname }))
  })
  server.on('sessionError', () => {})
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  return { port, origin: `https://localhost:${port}`, versions, close: async () => await new Promise<void>((resolve) => server.close(() => resolve())) }
}

t.test('upstream.http2 reaches an HTTP/2-only upstream; without it the failure is mapped', async (t) => {
  const ca = createTestCa()
  const up = await startH2OnlyUpstream(ca)
  const on = await startProxy({ args: ['--upstream-ca', ca.file, '--connect-port', String(up.port)], env: { SESSION_PROXY_UPSTREAM_HTTP2: 'true' } })
  const off = await startProxy({ args: ['--upstream-ca', ca.file, '--connect-port', String(up.port)] })
  const caOn = await proxyCaFile(on)
  const caOff = await proxyCaFile(off)
  t.teardown(async () => { await on.stop(); await off.stop(); await up.close(); cleanup(on.dataDir, off.dataDir, ca.dir) })

  const first = await curl(['-x', on.url, '--cacert', caOn.file, `${up.origin}/?set=${encodeURIComponent('up=h2; Path=/')}`])
  t.equal(first.status, 200, first.stderr)
  const second = await curl(['-x', on.url, '--cacert', caOn.file, '--http2', `${up.origin}/again`])
  t.equal(second.status, 200)
  t.equal(cookieOf(second.stdout), 'up=h2', 'the session is kept over the HTTP/2 upstream')
  t.same([...new Set(up.versions)], ['2.0'], 'the upstream was spoken to in HTTP/2')

  const refused = await curl(['-x', off.url, '--cacert', caOff.file, '-i', `${up.origin}/`])
  t.equal(refused.status, 502, 'with upstream.http2 off the HTTP/1.1-only pool cannot talk to it')
  t.match(refused.stdout, /x-session-proxy-error: SP_UPSTREAM_TLS/i, 'a mapped upstream error code')
  t.match(refused.stdout, new RegExp(`upstream localhost:${up.port}: TLS handshake failed: [\\s\\S]*no application protocol[\\s\\S]*an HTTP/2-only server\\? see upstream\\.http2`), 'naming the upstream, the reason and the setting')
})

t.test('h2c stays refused with 501 SP_H2C_UNSUPPORTED', async (t) => {
  const plain = await startUpstream(echoCookies())
  const proxy = await startProxy({ args: ['--connect-port', String(plain.port)] })
  t.teardown(async () => { await proxy.stop(); await plain.close(); cleanup(proxy.dataDir) })

  const upgrade = await curl(['-x', proxy.url, '--http2', '-i', `http://127.0.0.1:${plain.port}/`])
  t.equal(upgrade.status, 501, 'Upgrade: h2c through the proxy')
  t.match(upgrade.stdout, /x-session-proxy-error: SP_H2C_UNSUPPORTED/i)
  t.match(upgrade.stdout, /cleartext HTTP\/2 \(h2c\) is not supported/)

  const prior = await curlVersion(['--http2-prior-knowledge', '-i', `${proxy.url}/_session/health`])
  t.match(prior.out, /^HTTP\/2 501/, 'a prior-knowledge preface on the plain port gets an HTTP/2 501')
  t.match(prior.out, /x-session-proxy-error: SP_H2C_UNSUPPORTED/i)
  t.match(prior.out, /\n2 501\n$/)

  const tunnelled = await curlVersion(['--http2-prior-knowledge', '-p', '-x', proxy.url, '-i', `http://127.0.0.1:${plain.port}/`])
  t.match(tunnelled.out, /x-session-proxy-error: SP_H2C_UNSUPPORTED/i, 'a preface inside a plain CONNECT tunnel too')
  t.match(tunnelled.out, /\n2 501\n$/)
  const upgradeInTunnel = await curl(['--http2', '-p', '-x', proxy.url, '-i', `http://127.0.0.1:${plain.port}/`])
  t.equal(upgradeInTunnel.status, 501, 'and Upgrade: h2c inside a plain tunnel')
  t.match(upgradeInTunnel.stdout, /x-session-proxy-error: SP_H2C_UNSUPPORTED/i)

  const viaProxy = await curl(['-x', proxy.url, '--http2-prior-knowledge', `http://127.0.0.1:${plain.port}/`])
  t.equal(viaProxy.status, 200, 'curl speaks HTTP/1.1 to an http proxy even with --http2-prior-knowledge')

  t.equal((await adminGet(proxy, '/_session/health')).status, 200, 'the proxy goes on serving')
})

t.test('limits: concurrent streams, idle sessions and stalled bodies as over HTTP/1.1', async (t) => {
  const ca = createTestCa()
  const up = await startHttpsUpstream(upstreamHandler(), ca)
  const proxy = await startProxy({
    args: ['--upstream-ca', ca.file, '--connect-port', String(up.port)],
    config: { limits: { http2MaxConcurrentStreams: 7, clientKeepAliveTimeoutMs: 600, clientBodyIdleTimeoutMs: 500 } }
  })
  const proxyCa = await proxyCaFile(proxy)
  t.teardown(async () => { await proxy.stop(); await up.close(); cleanup(proxy.dataDir, ca.dir) })

  const session = await h2Through(proxy, `localhost:${up.port}`, proxyCa.pem)
  t.equal(session.remoteSettings.maxConcurrentStreams, 7, 'SETTINGS_MAX_CONCURRENT_STREAMS is limits.http2MaxConcurrentStreams')
  t.equal(session.remoteSettings.maxHeaderListSize, 65536, 'SETTINGS_MAX_HEADER_LIST_SIZE is limits.maxHeaderBytes')

  // A body that stalls gets 408, as over HTTP/1.1.
  const stalled = await new Promise<{ status: number, code: string | undefined }>((resolve, reject) => {
    const s = session.request({ ':method': 'POST', ':path': '/collect' }, { endStream: false })
    s.write('part')
    s.on('response', (h) => resolve({ status: Number(h[':status']), code: h['x-session-proxy-error'] as string | undefined }))
    s.on('error', reject)
  })
  t.same(stalled, { status: 408, code: 'SP_CLIENT_TIMEOUT' }, 'a stalled request body: 408 SP_CLIENT_TIMEOUT')

  const started = Date.now()
  const closed = await new Promise<string>((resolve) => {
    session.once('goaway', () => resolve('goaway'))
    session.once('close', () => resolve('close'))
    setTimeout(() => resolve('still open'), 5000).unref()
  })
  t.not(closed, 'still open', `an idle session is closed (${closed} after ${Date.now() - started} ms)`)
  session.destroy()
})

t.test('connect.http2: false offers HTTP/1.1 only, as before', async (t) => {
  const ca = createTestCa()
  const up = await startHttpsUpstream(echoCookies(), ca)
  const proxy = await startProxy({ args: ['--upstream-ca', ca.file, '--connect-port', String(up.port)], env: { SESSION_PROXY_CONNECT_HTTP2: 'false' } })
  const proxyCa = await proxyCaFile(proxy)
  t.teardown(async () => { await proxy.stop(); await up.close(); cleanup(proxy.dataDir, ca.dir) })
  const r = await curlVersion(['-x', proxy.url, '--cacert', proxyCa.file, '--http2', '-v', `${up.origin}/`])
  t.match(r.out, /\n1\.1 200\n$/, 'curl --http2 gets HTTP/1.1')
  t.match(r.err, /ALPN[^\n]*accepted[^\n]*http\/1\.1/)
})
