/**
 * Admin API safety against the real proxy, with curl and raw sockets: DNS
 * rebinding (foreign Host), cross-origin CSRF (foreign Origin, simple POST),
 * the bearer token beyond loopback, the fixed asset list, input that must be
 * refused with 400 rather than 500, no file system paths in any error, and
 * an event stream whose client stops reading.
 */
import net from 'node:net'
import t from 'tap'
import { openEventStream } from '../helpers/events.js'
import { cleanup, CLI, curl, echoCookies, ROOT, run, startProxy, startUpstream, viaProxy, type CurlResult, type ProxyProcess, type Upstream } from '../helpers/proxy.js'

interface Teardown { teardown: (fn: () => Promise<void> | void) => void }

const ADMIN = ['-H', 'x-session-proxy-admin: 1']

/** -i output split into status, headers and body. */
async function curlI (args: string[], input?: string): Promise<CurlResult & { headers: Record<string, string>, body: string }> {
  const r = await curl(['-i', ...args], input)
  const split = r.stdout.indexOf('\r\n\r\n')
  const head = split === -1 ? r.stdout : r.stdout.slice(0, split)
  const headers: Record<string, string> = {}
  for (const line of head.split('\r\n').slice(1)) {
    const c = line.indexOf(':')
    if (c > 0) headers[line.slice(0, c).toLowerCase()] = line.slice(c + 1).trim()
  }
  return { ...r, headers, body: split === -1 ? '' : r.stdout.slice(split + 4) }
}

/** One raw request on a fresh connection; resolves with everything the proxy sent until it closed or went quiet. */
async function raw (port: number, request: string): Promise<string> {
  return await new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1')
    const chunks: Buffer[] = []
    const done = (): void => { s.destroy(); resolve(Buffer.concat(chunks).toString('utf8')) }
    s.setTimeout(3000, done)
    s.on('data', (c: Buffer) => {
      chunks.push(c)
      const text = Buffer.concat(chunks).toString('utf8')
      const m = /content-length: (\d+)/i.exec(text)
      const end = text.indexOf('\r\n\r\n')
      if (m !== null && end !== -1 && Buffer.byteLength(text.slice(end + 4)) >= Number(m[1])) done()
    })
    s.on('end', done)
    s.on('error', reject)
    s.write(request)
  })
}

/** An upstream that sets a cookie and answers a json-token login. */
async function loginUpstream (): Promise<Upstream> {
  return await startUpstream((req, res) => {
    if (req.url === '/api/login') {
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ token: 'tok-123' }))
      return
    }
    echoCookies()(req, res)
  })
}

async function setup (t: Teardown, config: (up: Upstream) => Record<string, unknown> = () => ({}), opts: { args?: string[], env?: NodeJS.ProcessEnv } = {}): Promise<{ proxy: ProxyProcess, up: Upstream, base: string }> {
  const up = await loginUpstream()
  const proxy = await startProxy({ config: config(up), args: opts.args, env: opts.env })
  t.teardown(async () => { await proxy.stop(); await up.close(); cleanup(proxy.dataDir) })
  return { proxy, up, base: `http://127.0.0.1:${proxy.port}` }
}

const aliceLogin = (up: Upstream): Record<string, unknown> => ({
  admin: { hosts: ['proxy.internal', 'front.example:8443'] },
  profiles: { alice: { autopilot: [{ match: `127.0.0.1:${up.port}`, login: { preset: 'json-token', username: 'alice', password: { value: 'alice-pw' } } }] } }
})

async function setCookie (proxy: ProxyProcess, up: Upstream, profile = 'alice'): Promise<void> {
  const r = await viaProxy(proxy.port, `${up.origin}/?set=${encodeURIComponent('sid=SECRET-VALUE; Path=/')}`, { headers: { 'x-session-profile': profile } })
  if (r.status !== 200) throw new Error(`set cookie: ${r.status} ${r.body}`)
}

t.test('DNS rebinding: a foreign Host gets 421 SP_ADMIN_HOST, for reads and changes', async (t) => {
  const { proxy, up, base } = await setup(t, aliceLogin)
  await setCookie(proxy, up)
  const read = await curlI(['-H', `Host: attacker.example:${proxy.port}`, `${base}/_session/profiles/alice/cookies`])
  t.equal(read.status, 421)
  t.equal(read.headers['x-session-proxy-error'], 'SP_ADMIN_HOST')
  t.match(JSON.parse(read.body), { error: 'SP_ADMIN_HOST', message: /own names.*attacker\.example.*admin\.hosts/ })
  t.notMatch(read.body, 'SECRET-VALUE', 'no cookie value')
  const del = await curlI(['-X', 'DELETE', '-H', `Host: attacker.example:${proxy.port}`, '-H', 'Origin: http://attacker.example', `${base}/_session/profiles/alice/cookies`])
  t.equal(del.status, 421)
  for (const host of ['attacker.example', `127.0.0.1.attacker.example:${proxy.port}`, `localhost.:${proxy.port}`, 'bad host', `[::2]:${proxy.port}`, `front.example:${proxy.port}`]) {
    t.equal((await curlI(['-H', `Host: ${host}`, `${base}/_session/profiles`])).status, 421, host)
  }
  const page = await curlI(['-H', 'Host: attacker.example', `${base}/_session/`])
  t.equal(page.status, 421, 'the page too')
  const cookies = await curlI([`${base}/_session/profiles/alice/cookies`])
  t.equal(cookies.status, 200)
  t.match(cookies.body, 'SECRET-VALUE', 'the jar is intact')
  for (const host of [`localhost:${proxy.port}`, 'localhost', `127.0.0.1:${proxy.port}`, '127.0.0.1', `[::1]:${proxy.port}`, '[::1]', 'LOCALHOST:1234', 'proxy.internal', `proxy.internal:${proxy.port}`, 'front.example:8443']) {
    t.equal((await curlI(['-H', `Host: ${host}`, `${base}/_session/health`])).status, 200, host)
  }
  // Absolute-form is proxied traffic, never the admin API; an HTTP/1.0 request without Host is no browser's.
  t.match(await raw(proxy.port, 'GET /_session/health HTTP/1.0\r\n\r\n'), /^HTTP\/1\.1 200/)
})

t.test('CSRF: a foreign Origin cannot change anything; a POST needs x-session-proxy-admin or the token', async (t) => {
  const { proxy, up, base } = await setup(t, aliceLogin)
  await setCookie(proxy, up)
  const logins = (): number => up.requests.filter((r) => r.url === '/api/login').length

  const simple = await curlI(['-X', 'POST', '-H', 'Origin: http://attacker.example', '-H', 'Content-Type: text/plain', '--data-binary', 'x', `${base}/_session/profiles/alice/login`])
  t.equal(simple.status, 403)
  t.match(JSON.parse(simple.body), { error: 'SP_ADMIN_ORIGIN', message: /another origin \(http:\/\/attacker\.example\)/ })
  const withHeader = await curlI(['-X', 'POST', ...ADMIN, '-H', 'Origin: http://attacker.example', `${base}/_session/profiles/alice/login`])
  t.equal(withHeader.status, 403, 'the custom header does not excuse a foreign Origin')
  const nullOrigin = await curlI(['-X', 'POST', ...ADMIN, '-H', 'Origin: null', `${base}/_session/profiles/alice/login`])
  t.equal(nullOrigin.headers['x-session-proxy-error'], 'SP_ADMIN_ORIGIN', 'a sandboxed page (Origin: null) is foreign')
  const otherPort = await curlI(['-X', 'POST', ...ADMIN, '-H', `Origin: http://127.0.0.1:${up.port}`, `${base}/_session/profiles/alice/login`])
  t.equal(otherPort.status, 403, 'another port on this machine is another origin')
  for (const form of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
    const r = await curlI(['-X', 'POST', '-H', `Content-Type: ${form}`, '--data-binary', 'a=1', `${base}/_session/profiles/alice/login`])
    t.equal(r.status, 403, form)
    t.match(JSON.parse(r.body), { error: 'SP_ADMIN_HEADER_REQUIRED', message: /x-session-proxy-admin: 1/ })
  }
  const bare = await curlI(['-X', 'POST', `${base}/_session/profiles/alice/login`])
  t.equal(bare.headers['x-session-proxy-error'], 'SP_ADMIN_HEADER_REQUIRED', 'no Content-Type at all is a simple request too')
  t.equal(logins(), 0, 'no refused call ran the login')

  for (const [method, path] of [['DELETE', '/_session/profiles/alice/cookies'], ['PUT', '/_session/profiles/alice/cookies.txt'], ['PUT', '/_session/profiles/alice/capture'], ['DELETE', '/_session/profiles/alice/har'], ['DELETE', `/_session/profiles/alice/cookies/127.0.0.1/${encodeURIComponent('/')}/sid`]] as const) {
    const r = await curlI(['-X', method, '-H', 'Origin: https://attacker.example', '-H', 'Content-Type: application/json', '--data-binary', '{"enabled":true}', `${base}${path}`])
    t.equal(r.status, 403, `${method} ${path}`)
    t.equal(r.headers['x-session-proxy-error'], 'SP_ADMIN_ORIGIN')
  }
  const jar = await curlI([`${base}/_session/profiles/alice/cookies`])
  t.match(jar.body, 'SECRET-VALUE', 'the jar is intact')
  t.match(JSON.parse((await curlI([`${base}/_session/profiles/alice/capture`])).body), { enabled: false }, 'capture unchanged')

  const ok = await curlI(['-X', 'POST', ...ADMIN, `${base}/_session/profiles/alice/login`])
  t.equal(ok.status, 200, ok.body)
  t.equal(logins(), 1, 'the header lets the CLI and scripts through')
  const ownOrigin = await curlI(['-X', 'POST', ...ADMIN, '-H', `Origin: http://127.0.0.1:${proxy.port}`, `${base}/_session/profiles/alice/login`])
  t.equal(ownOrigin.status, 200, 'the page itself')
  const viaName = await curlI(['-X', 'DELETE', '-H', `Host: localhost:${proxy.port}`, '-H', `Origin: http://localhost:${proxy.port}`, `${base}/_session/profiles/alice/har`])
  t.equal(viaName.status, 200, 'Origin and Host of the same URL')
  const front = await curlI(['-X', 'DELETE', '-H', 'Host: proxy.internal', '-H', 'Origin: https://front.example:8443', `${base}/_session/profiles/alice/har`])
  t.equal(front.status, 200, 'an admin.hosts origin (a TLS front)')
  const mismatch = await curlI(['-X', 'DELETE', '-H', `Host: localhost:${proxy.port}`, '-H', `Origin: http://127.0.0.1:${proxy.port}`, `${base}/_session/profiles/alice/har`])
  t.equal(mismatch.status, 403, 'another own name is another origin')
  const get = await curlI(['-H', 'Origin: http://attacker.example', `${base}/_session/profiles/alice/cookies`])
  t.equal(get.status, 200, 'a read needs no Origin check: a foreign page cannot read the answer (no CORS)')
  t.notOk(get.headers['access-control-allow-origin'])

  const cli = await run(process.execPath, [CLI, 'login', 'alice', '--host', '127.0.0.1', '--port', String(proxy.port)])
  t.equal(cli.code, 0, cli.stderr)
  t.equal(logins(), 3, '`session-proxy login` sends the header')
})

t.test('beyond loopback without admin.token: every admin call but the public ones is refused', async (t) => {
  const { proxy, up, base } = await setup(t, () => ({ allowClients: ['127.0.0.1'] }), { args: ['--host', '0.0.0.0'] })
  await setCookie(proxy, up, 'default')
  const r = await curlI([`${base}/_session/profiles/default/cookies`])
  t.equal(r.status, 403)
  t.match(JSON.parse(r.body), { error: 'SP_ADMIN_TOKEN_UNSET', message: /set admin\.token/ })
  t.notMatch(r.body, 'SECRET-VALUE')
  const health = await curlI([`${base}/_session/health`])
  t.equal(health.status, 200, 'health stays open for a HEALTHCHECK')
  t.same(JSON.parse(health.body), { status: 'ok' }, 'with nothing but the status')
  t.equal((await curlI([`${base}/_session/`])).status, 200, 'the page loads (and asks for the token)')
  t.equal((await curlI([`${base}/_session/assets/app.js`])).status, 200)
  t.match((await curlI([`${base}/_session/ca.pem`])).body, 'BEGIN CERTIFICATE', 'the CA certificate is public')
  t.equal((await curlI(['-X', 'POST', ...ADMIN, `${base}/_session/profiles/default/login`])).status, 403)
  t.equal((await curlI(['-I', `${base}/_session/metrics`])).status, 403, 'metrics name profiles')
})

t.test('admin.token: Bearer on every call, timing-safe, from { env }; the CLI sends it', async (t) => {
  const token = 'tok-' + 'x'.repeat(40)
  const { proxy, up, base } = await setup(t, (up) => ({ ...aliceLogin(up), allowClients: ['127.0.0.1'], admin: { token: { env: 'SP_TEST_ADMIN_TOKEN' } } }), { args: ['--host', '0.0.0.0'], env: { SP_TEST_ADMIN_TOKEN: token } })
  await setCookie(proxy, up)
  const none = await curlI([`${base}/_session/profiles/alice/cookies`])
  t.equal(none.status, 401)
  t.equal(none.headers['www-authenticate'], 'Bearer realm="session-proxy admin"')
  t.match(JSON.parse(none.body), { error: 'SP_ADMIN_AUTH_REQUIRED' })
  for (const auth of [`Bearer ${token}x`, `Bearer ${token.slice(0, -1)}`, `Basic ${Buffer.from('u:' + token).toString('base64')}`, 'Bearer', token]) {
    t.equal((await curlI(['-H', `Authorization: ${auth}`, `${base}/_session/profiles/alice/cookies`])).status, 401, auth.slice(0, 12))
  }
  // The router decodes %5F and %68: the gate must not take these for other or public paths.
  t.equal((await curlI([`${base}/%5Fsession/profiles/alice/cookies`])).status, 401, 'an encoded /_session/ needs the token too')
  t.equal((await curlI([`${base}/_session/%68ealth`])).status, 401, 'an encoded health is not the public one')
  t.equal((await curlI(['-H', 'Host: attacker.example', `${base}/%5Fsession/profiles/alice/cookies`])).status, 421)
  const ok = await curlI(['-H', `Authorization: Bearer ${token}`, `${base}/_session/profiles/alice/cookies`])
  t.equal(ok.status, 200)
  t.match(ok.body, 'SECRET-VALUE')
  t.equal((await curlI(['-H', `authorization: bearer  ${token}`, `${base}/_session/profiles`])).status, 200, 'the scheme is case-insensitive')
  t.same(JSON.parse((await curlI([`${base}/_session/health`])).body), { status: 'ok' })
  t.match(JSON.parse((await curlI(['-H', `Authorization: Bearer ${token}`, `${base}/_session/health`])).body), { status: 'ok', version: String })
  const post = await curlI(['-X', 'POST', '-H', `Authorization: Bearer ${token}`, `${base}/_session/profiles/alice/login`])
  t.equal(post.status, 200, 'the token makes a POST non-simple by itself')
  t.equal((await curlI(['-X', 'POST', '-H', `Authorization: Bearer ${token}`, '-H', 'Origin: http://attacker.example', `${base}/_session/profiles/alice/login`])).status, 403, 'and a foreign Origin is still refused')
  t.equal((await curlI(['-H', 'Host: attacker.example', '-H', `Authorization: Bearer ${token}`, `${base}/_session/profiles`])).status, 421, 'the token does not excuse a foreign Host')

  const env = { SP_TEST_ADMIN_TOKEN: token }
  const cfg = proxy.proc.spawnargs[proxy.proc.spawnargs.indexOf('--config') + 1]!
  const cli = await run(process.execPath, [CLI, 'login', 'alice', '--host', '127.0.0.1', '--port', String(proxy.port), '--config', cfg], { env })
  t.equal(cli.code, 0, cli.stderr)
  const explain = await run(process.execPath, [CLI, 'explain', `${up.origin}/`, '--profile', 'alice', '--host', '127.0.0.1', '--port', String(proxy.port), '--config', cfg], { env })
  t.equal(explain.code, 0, explain.stderr)
  t.match(explain.stdout.toString(), 'sid')
  const noToken = await run(process.execPath, [CLI, 'explain', `${up.origin}/`, '--host', '127.0.0.1', '--port', String(proxy.port), '--config', cfg], { env: { SP_TEST_ADMIN_TOKEN: '' } })
  t.equal(noToken.code, 2, 'a token the CLI cannot read is a configuration error')
  t.match(noToken.stderr, /admin\.token: environment variable SP_TEST_ADMIN_TOKEN is empty/)
})

t.test('a token configured on a loopback listener is required too', async (t) => {
  const { base } = await setup(t, () => ({ admin: { token: { value: 'loopback-token-0123456789' } } }))
  t.equal((await curlI([`${base}/_session/profiles`])).status, 401)
  t.equal((await curlI(['-H', 'Authorization: Bearer loopback-token-0123456789', `${base}/_session/profiles`])).status, 200)
})

t.test('static assets come from a fixed list; no error names a file or shows a stack', async (t) => {
  const { proxy, base } = await setup(t)
  for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf', 'index.html', '..%2Fpackage.json', '%2E%2E%2F%2E%2E%2Fpackage.json', 'app.js.map', '']) {
    const r = await curlI([`${base}/_session/assets/${name}`])
    t.equal(r.status, 404, name)
    t.notMatch(r.stdout, ROOT.replace(/\/$/, ''), 'no install path')
    t.notMatch(r.stdout, proxy.dataDir)
  }
  const js = await curlI([`${base}/_session/assets/app.js`])
  t.equal(js.status, 200)
  t.match(js.headers['content-type'], 'text/javascript')
  t.equal(js.headers['x-content-type-options'], 'nosniff')
})

t.test('odd input is a 400 with a code, never a 500', async (t) => {
  const { proxy, base } = await setup(t, () => ({ limits: { maxAdminBodyBytes: 4096 } }))
  const cases: Array<[string[], number, string]> = [
    [[`${base}/_session/profiles/default/events?limit=-1`], 400, 'SP_BAD_QUERY'],
    [[`${base}/_session/profiles/default/events?since=abc`], 400, 'SP_BAD_QUERY'],
    [[`${base}/_session/profiles/default/events?since=1e3`], 400, 'SP_BAD_QUERY'],
    [[`${base}/_session/profiles/default/events?since=99999999999999999999`], 400, 'SP_BAD_QUERY'],
    [['-H', 'accept: text/event-stream', `${base}/_session/profiles/default/events?since=-5`], 400, 'SP_BAD_QUERY'],
    [[`${base}/_session/profiles/default/events?limit=1&limit=2`], 400, 'SP_BAD_QUERY'],
    [[`${base}/_session/profiles/default/explain?url=http://a/&url=http://b/`], 400, 'SP_BAD_QUERY'],
    [['-X', 'POST', ...ADMIN, `${base}/_session/profiles/default/login?host=a&host=b`], 400, 'SP_BAD_QUERY'],
    [[`${base}/_session/profiles/default/explain?url=http://a/&method=%00`], 400, 'SP_EXPLAIN_BAD_METHOD'],
    [[`${base}/_session/profiles/default/explain?url=%ZZ`], 400, 'SP_EXPLAIN_BAD_URL'],
    [[`${base}/_session/profiles/__proto__/cookies`], 400, 'SP_PROFILE_INVALID'],
    [[`${base}/_session/profiles/constructor/cookies`], 404, 'SP_PROFILE_NOT_FOUND'],
    [['-X', 'PUT', '--data-binary', 'x', `${base}/_session/profiles/__proto__/cookies.txt`], 400, 'SP_PROFILE_INVALID'],
    [['-X', 'PUT', '-H', 'content-type: application/json', '--data-binary', '{"enabled":true}', `${base}/_session/profiles/__proto__/capture`], 400, 'SP_PROFILE_INVALID'],
    [['-X', 'POST', ...ADMIN, `${base}/_session/profiles/__proto__/login`], 400, 'SP_PROFILE_INVALID'],
    [[`${base}/_session/profiles/%zz/cookies`], 400, 'SP_BAD_URL'],
    [[`${base}/_session/profiles/default/events?since=%zz`], 400, 'SP_BAD_QUERY'],
    [['-X', 'PUT', '-H', 'content-type: application/json', '--data-binary', '{"enabled":', `${base}/_session/profiles/default/capture`], 400, 'SP_ADMIN_BAD_JSON'],
    [['-X', 'PUT', '-H', 'content-type: application/json', `${base}/_session/profiles/default/capture`], 400, 'SP_ADMIN_BAD_JSON'],
    [['-X', 'PUT', '-H', 'content-type: application/json', '--data-binary', '{"__proto__":{"enabled":true}}', `${base}/_session/profiles/default/capture`], 400, 'SP_ADMIN_BAD_JSON'],
    [['-X', 'PUT', '-H', 'content-type: application/json', '--data-binary', '[]', `${base}/_session/profiles/default/capture`], 400, 'SP_CAPTURE_INVALID'],
    [['-X', 'PUT', '-H', 'content-type: application/json', '--data-binary', 'null', `${base}/_session/profiles/default/capture`], 400, 'SP_CAPTURE_INVALID'],
    [['-X', 'PUT', '-H', 'content-type: application/xml', '--data-binary', '<a/>', `${base}/_session/profiles/default/capture`], 415, 'SP_ADMIN_MEDIA_TYPE'],
    [['-X', 'PUT', '-H', 'content-type: application/json', '--data-binary', JSON.stringify({ enabled: true, pad: 'x'.repeat(5000) }), `${base}/_session/profiles/default/capture`], 413, 'SP_ADMIN_BODY_TOO_LARGE'],
    [['-X', 'PUT', '--data-binary', '@-', `${base}/_session/profiles/default/cookies.txt`], 413, 'SP_ADMIN_BODY_TOO_LARGE']
  ]
  const big = '# Netscape HTTP Cookie File\n' + 'example.com\tFALSE\t/\tFALSE\t0\tname\tvalue\n'.repeat(200)
  for (const [args, status, code] of cases) {
    const r = await curlI(args, args.includes('@-') ? big : undefined)
    const what = args.filter((a) => a.startsWith('http')).join(' ')
    t.equal(r.status, status, `${what}: ${r.body.slice(0, 200)}`)
    t.equal(r.headers['x-session-proxy-error'], code, what)
    t.match(JSON.parse(r.body), { error: code, message: String }, what)
    t.notMatch(r.body, ROOT.replace(/\/$/, ''), 'no install path')
    t.notMatch(r.body, /\n\s+at /, 'no stack')
  }
  t.equal((await curlI([`${base}/_session/health`])).status, 200, 'still serving')
  t.notOk(proxy.output.some((l) => l.includes('"admin request failed"')), 'nothing reached the 500 path')
})

t.test('an event stream whose client stops reading is dropped at limits.maxAdminStreamBufferBytes', async (t) => {
  const limit = 65536
  // A short event log: the stalled client soon owes events the log no longer has.
  const { proxy, up, base } = await setup(t, () => ({ limits: { maxAdminStreamBufferBytes: limit }, events: { maxPerProfile: 50 } }))
  const socket = net.connect(proxy.port, '127.0.0.1')
  let received = 0
  let head = ''
  const closed = new Promise<void>((resolve) => {
    socket.on('close', () => resolve())
    socket.on('error', () => {})
  })
  socket.on('data', (c: Buffer) => {
    received += c.length
    if (head.length < 200) head += c.toString('latin1')
  })
  await new Promise<void>((resolve) => socket.once('connect', () => resolve()))
  socket.write(`GET /_session/profiles/default/events HTTP/1.1\r\nHost: 127.0.0.1:${proxy.port}\r\nAccept: text/event-stream\r\n\r\n`)
  // Wait for the stream to open, then stop reading.
  while (!head.includes('retry:')) await new Promise((resolve) => setTimeout(resolve, 20))
  socket.pause()

  // Each response has 100 Set-Cookie the jar rejects (a foreign Domain); each
  // rejection is an event that carries the 6 KiB request URL.
  const rejects = Array.from({ length: 100 }, (_, i) => `set=${encodeURIComponent(`r${i}=1; Domain=elsewhere.example`)}`).join('&')
  const url = `${up.origin}/${'p'.repeat(6000)}?${rejects}`
  const dropped = (): boolean => proxy.output.some((l) => l.includes('event stream dropped'))
  let requests = 0
  while (!dropped() && requests < 300) {
    const r = await viaProxy(proxy.port, url)
    t.equal(r.status, 200)
    requests++
    if (requests % 10 === 0) await new Promise((resolve) => setTimeout(resolve, 50))
  }
  t.ok(dropped(), `dropped after ${requests} responses`)
  const line = JSON.parse(proxy.output.find((l) => l.includes('event stream dropped'))!) as { bufferedBytes: number, limit: number }
  t.equal(line.limit, limit, 'the configured limit')
  t.ok(line.bufferedBytes > limit && line.bufferedBytes < limit + 64 * 1024, `${line.bufferedBytes} bytes were queued: the limit and one event`)
  // Reading again: what was in flight arrives, then the connection ends.
  socket.resume()
  await closed
  const produced = requests * 100 * 6000
  t.ok(received < produced, `received ${received} of about ${produced} bytes of events`)
  t.equal((await curlI([`${base}/_session/health`])).status, 200, 'still serving')
  const again = await curlI(['-H', 'accept: text/event-stream', '--max-time', '1', `${base}/_session/profiles/default/events?since=0`])
  t.match(again.stdout, 'retry: 2000', 'a new stream opens')
})

t.test('a reading client gets a burst larger than the limit whole and in order', async (t) => {
  const { proxy, up, base } = await setup(t, () => ({ limits: { maxAdminStreamBufferBytes: 65536 } }))
  const stream = await openEventStream(`${base}/_session/profiles/default/events`)
  t.teardown(() => { stream.close() })
  t.equal(stream.status, 200)
  // One response, 150 rejected cookies, each event carrying the 14 KB URL: 2 MB in one go.
  const rejects = Array.from({ length: 150 }, (_, i) => `set=${encodeURIComponent(`r${i}=1; Domain=elsewhere.example`)}`).join('&')
  t.equal((await viaProxy(proxy.port, `${up.origin}/${'p'.repeat(8000)}?${rejects}`)).status, 200)
  await stream.next((e) => e.type === 'cookie.rejected' && e.name === 'r149', 20_000)
  const seqs = stream.received.map((r) => r.data.seq)
  t.equal(seqs.length, 150, 'every event')
  t.same(seqs, seqs.map((_, i) => i + 1), 'in order, no gap')
  t.same(stream.received.map((r) => r.id), seqs.map(String), 'each with its id')
  t.notOk(proxy.output.some((l) => l.includes('event stream dropped')), 'not dropped')
})
