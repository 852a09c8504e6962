/**
 * The autopilot (managed path) against hostile and careless upstreams and
 * clients, end to end: the real proxy process, tiny Node upstreams on
 * loopback, curl and raw sockets as clients. Issue 9, "the autopilot is as
 * careful as the jar": where credentials go, per-origin session values,
 * unsendable captured values, one value per header, bounded login steps and
 * discarded answers, clients that go away, a secret file that goes away.
 *
 * The pool is limited to one connection per origin, so an upstream
 * connection the proxy fails to give back blocks the next request there.
 */
import t from 'tap'
import net from 'node:net'
import http from 'node:http'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { adminGet, cleanup, curl, startProxy, startUpstream, tempDir, type ProxyProcess, type Upstream } from '../helpers/proxy.js'

interface Seen { method: string, path: string, headers: http.IncomingHttpHeaders, rawHeaders: string[], body: string }
interface App { up: Upstream, seen: Seen[], host: string }

/** An upstream that records every request with its body, then lets `handle` answer. */
async function app (handle: (req: Seen, res: http.ServerResponse) => void): Promise<App> {
  const seen: Seen[] = []
  const up = await startUpstream((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const s: Seen = { method: req.method!, path: req.url!, headers: req.headers, rawHeaders: req.rawHeaders, body: Buffer.concat(chunks).toString('utf8') }
      seen.push(s)
      handle(s, res)
    })
  })
  return { up, seen, host: `127.0.0.1:${up.port}` }
}

const json = (res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void => {
  res.writeHead(status, { 'content-type': 'application/json', ...headers })
  res.end(JSON.stringify(body))
}

/** A json-token login server: POST /api/login answers `token` (after `delayMs`, or never); /api/me needs `Bearer good`. */
function tokenServer (opts: { token?: string, delayMs?: number, hang?: boolean, endlessLoggedOut?: boolean } = {}): (req: Seen, res: http.ServerResponse) => void {
  return (req, res) => {
    if (req.method === 'POST' && req.path === '/api/login') {
      if (opts.hang === true) return
      setTimeout(() => json(res, 200, { token: opts.token ?? 'good' }), opts.delayMs ?? 0)
      return
    }
    if (req.headers.authorization === 'Bearer good') { json(res, 200, { user: 'alice' }); return }
    if (opts.endlessLoggedOut === true) {
      // A logged-out answer whose body never ends: the proxy must not drain it forever.
      res.writeHead(401, { 'content-type': 'text/plain' })
      const timer = setInterval(() => res.write(Buffer.alloc(16 * 1024, 0x61)), 5)
      res.on('close', () => clearInterval(timer))
      return
    }
    json(res, 401, { error: 'unauthorized' })
  }
}

const SECRET = 'pw-hunter2-secret'
let proxy: ProxyProcess
const apps: Record<string, App> = {}
const secretDir = tempDir('sp-secret-')
const secretFile = join(secretDir, 'password')

t.before(async () => {
  apps.attacker = await app((_req, res) => json(res, 401, { error: 'who are you' }, { 'www-authenticate': 'Bearer' }))
  apps.a = await app((req, res) => json(res, 200, { ok: true }, req.method === 'GET' ? { 'x-auth-token': 'session-of-a', 'x-csrf-token': 'csrf-of-a' } : {}))
  apps.b = await app((_req, res) => json(res, 200, { ok: true }))
  apps.badcsrf = await app((req, res) => {
    if (req.path === '/token') json(res, 200, { token: 'abc\r\nX-Injected: 1' })
    else if (req.path === '/token-utf8') {
      // A JSON escape: the token is the character U+20AC itself, which latin1 cannot carry.
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end('{"token":"caf\\u20ac"}')
    } else if (req.path === '/page') {
      res.writeHead(200, { 'content-type': 'text/html' })
      res.end('<form><input type="hidden" name="_csrf" value="x&#13;&#10;Evil: 1"></form>')
    } else json(res, 200, { ok: true })
  })
  apps.badlogin = await app(tokenServer({ token: 'abc\ndef' }))
  apps.dup = await app((req, res) => json(res, 200, { ok: true }, req.path === '/start' ? { 'x-auth-token': 'session-1' } : {}))
  apps.slowlogin = await app(tokenServer({ hang: true }))
  apps.biglogin = await app((req, res) => {
    if (req.path === '/login' && req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'text/html' })
      res.end(`<html><input name="_csrf" value="t">${'x'.repeat(200 * 1024)}</html>`)
    } else if (req.path === '/login') {
      res.writeHead(302, { location: '/' })
      res.end()
    } else json(res, 401, { error: 'unauthorized' })
  })
  apps.endless = await app(tokenServer({ endlessLoggedOut: true }))
  apps.download = await app((req, res) => {
    if (req.path === '/big') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(64 * 1024 * 1024) })
      res.end(Buffer.alloc(64 * 1024 * 1024, 0x62))
    } else json(res, 200, { ok: true })
  })
  apps.waitlogin = await app(tokenServer({ delayMs: 1000 }))
  apps.secret = await app(tokenServer())
  apps.elsewhere = await app((_req, res) => json(res, 200, { elsewhere: true }))

  writeFileSync(secretFile, SECRET)
  const jsonToken = (host: string, password: Record<string, string> = { value: SECRET }): Record<string, unknown> =>
    ({ match: host, login: { preset: 'json-token', username: 'alice', password } })
  proxy = await startProxy({
    config: {
      pool: { connectionsPerOrigin: 1 },
      limits: { loginStepTimeoutMs: 1500, loginMaxBodyBytes: 65536 },
      profiles: {
        // match names a host but no port: the login runs only at its default port.
        portless: { autopilot: [jsonToken('127.0.0.1')] },
        wild: { autopilot: [{ match: '127.0.0.1', sessionHeaders: ['X-Auth-Token'], csrf: [{ from: { header: 'X-CSRF-Token' }, to: { header: 'X-CSRF-Token' } }] }] },
        badcsrf: { autopilot: [{ match: apps.badcsrf.host, csrf: [{ from: { json: 'token' }, to: { header: 'X-CSRF-TOKEN' } }] }] },
        badform: { autopilot: [{ match: apps.badcsrf.host, csrf: [{ from: { html: { input: '_csrf' } }, to: { header: 'X-CSRF-TOKEN' } }] }] },
        badlogin: { autopilot: [jsonToken(apps.badlogin.host)] },
        dup: {
          hosts: [{ match: apps.dup.host, headers: { 'X-Auth-Token': 'static-default' } }],
          autopilot: [{ match: apps.dup.host, sessionHeaders: ['X-Auth-Token'] }]
        },
        slowlogin: { autopilot: [jsonToken(apps.slowlogin.host)] },
        biglogin: { autopilot: [{ match: apps.biglogin.host, login: { preset: 'spring-form', username: 'alice', password: { value: SECRET } } }] },
        endless: { autopilot: [jsonToken(apps.endless.host)] },
        dl: { autopilot: [{ match: apps.download.host, sessionHeaders: ['X-Auth-Token'] }] },
        waitlogin: { autopilot: [jsonToken(apps.waitlogin.host)] },
        sec: { autopilot: [jsonToken(apps.secret.host, { file: secretFile })] }
      }
    }
  })
})

t.teardown(async () => {
  await proxy?.stop()
  for (const a of Object.values(apps)) await a.up.close()
  if (proxy !== undefined) cleanup(proxy.dataDir)
  cleanup(secretDir)
})

const as = (profile: string): string[] => ['-H', `X-Session-Profile: ${profile}`, '-x', `http://127.0.0.1:${proxy.port}`]
let calls = 0
const get = async (profile: string, url: string, extra: string[] = []): Promise<{ status: number, body: string, headers: string }> => {
  const file = join(secretDir, `headers-${++calls}.txt`)
  const r = await curl([...as(profile), '-D', file, ...extra, url])
  let headers = ''
  try { headers = readFileSync(file, 'latin1') } catch {}
  return { status: r.status, body: r.stdout, headers }
}
const errorCode = (headers: string): string | undefined => /^x-session-proxy-error: (\S+)/im.exec(headers)?.[1]
const count = (a: App, method: string, path: string): number => a.seen.filter((s) => s.method === method && s.path === path).length
async function events (profile: string): Promise<Array<{ type: string, [k: string]: unknown }>> {
  return ((await adminGet(proxy, `/_session/profiles/${profile}/events?limit=1000`)).json as { events: Array<{ type: string }> }).events
}

t.test('a login with a wildcard match and no baseUrl is refused at start, naming the rule', async (t) => {
  const err = await startProxy({ config: { profiles: { p: { autopilot: [{ match: '*.example.test', login: { preset: 'json-token', username: 'u', password: { value: 'x' } } }] } } } })
    .then(async (p) => { await p.stop(); cleanup(p.dataDir); return null }, (e: unknown) => e as Error)
  t.ok(err !== null, 'the proxy does not start')
  t.match(err?.message, /profiles\.p\.autopilot\[0\]: match "\*\.example\.test" can match many hosts.*give the rule a baseUrl/i)
})

t.test('credentials go only to the host and port the rule names: not to another port of a portless match', async (t) => {
  const r = await get('portless', `http://${apps.attacker.host}/api/me`)
  t.equal(r.status, 401, 'the answer is delivered as it is')
  t.notOk(apps.attacker.seen.some((s) => s.body.includes(SECRET) || s.path === '/api/login'), 'no login, no password at the port the rule does not name')
  t.notOk((await events('portless')).some((e) => e.type === 'login.started'))
})

t.test('session headers and CSRF tokens stay with the origin that sent them', async (t) => {
  await get('wild', `http://${apps.a.host}/page`)
  await get('wild', `http://${apps.a.host}/items`, ['-d', 'x=1'])
  const postA = apps.a.seen.find((s) => s.method === 'POST')!
  t.equal(postA.headers['x-auth-token'], 'session-of-a', 'sent back to the origin that set it')
  t.equal(postA.headers['x-csrf-token'], 'csrf-of-a')
  await get('wild', `http://${apps.b.host}/page`)
  await get('wild', `http://${apps.b.host}/items`, ['-d', 'x=1'])
  t.equal(apps.b.seen.length, 2)
  for (const s of apps.b.seen) {
    t.notOk(s.headers['x-auth-token'], `no session header of another port (${s.method})`)
    t.notOk(s.headers['x-csrf-token'], `no CSRF token of another port (${s.method})`)
  }
})

t.test('a CSRF token that cannot be sent in a header is refused when captured, not on every request', async (t) => {
  for (const [profile, source] of [['badcsrf', '/token'], ['badcsrf', '/token-utf8'], ['badform', '/page']] as const) {
    await get(profile, `http://${apps.badcsrf.host}${source}`)
    const mark = apps.badcsrf.seen.length
    const post = await get(profile, `http://${apps.badcsrf.host}/items`, ['-d', 'x=1'])
    t.equal(post.status, 200, `${profile} ${source}: the POST goes through (${post.body.slice(0, 120)})`)
    const sent = apps.badcsrf.seen.slice(mark).find((s) => s.method === 'POST')
    t.notOk(sent?.headers['x-csrf-token'], 'without the refused token')
    t.notOk(sent?.headers['x-injected'], 'and nothing injected')
  }
  t.ok(proxy.output.some((l) => l.includes('autopilot refused a captured value') && !l.includes('abc')), 'the refusal is logged, without the value')
})

t.test('a login token that cannot be sent fails the login once, with a clear 502', async (t) => {
  const r = await get('badlogin', `http://${apps.badlogin.host}/api/me`)
  t.equal(r.status, 502)
  t.equal(errorCode(r.headers), 'SP_LOGIN_FAILED')
  t.match(r.body, /failed at step "token": .*cannot be sent in a header: it contains a line break/)
  t.notOk(r.body.includes('abc'), 'the value is not shown')
})

t.test('one value per header name: the autopilot\'s session header wins over the host default', async (t) => {
  await get('dup', `http://${apps.dup.host}/start`)
  await get('dup', `http://${apps.dup.host}/next`)
  const next = apps.dup.seen.find((s) => s.path === '/next')!
  const values = next.rawHeaders.filter((_v, i) => i % 2 === 0 && next.rawHeaders[i]!.toLowerCase() === 'x-auth-token').length
  t.equal(values, 1, 'one X-Auth-Token')
  t.equal(next.headers['x-auth-token'], 'session-1', 'the session value')
  t.equal(apps.dup.seen.find((s) => s.path === '/start')!.headers['x-auth-token'], 'static-default', 'the default until the session has one')
})

t.test('a login step that never answers fails the login after limits.loginStepTimeoutMs, naming the step', async (t) => {
  const r = await get('slowlogin', `http://${apps.slowlogin.host}/api/me`)
  t.equal(r.status, 502)
  t.equal(errorCode(r.headers), 'SP_LOGIN_STEP_TIMEOUT')
  t.match(r.body, /login "json-token" failed at step "token request": POST http:\/\/127\.0\.0\.1:\d+\/api\/login: no complete answer within 1500 ms \(limits\.loginStepTimeoutMs\)/)
})

t.test('a login step with a body over limits.loginMaxBodyBytes fails the login, naming the step', async (t) => {
  const r = await get('biglogin', `http://${apps.biglogin.host}/api/me`)
  t.equal(r.status, 502)
  t.equal(errorCode(r.headers), 'SP_LOGIN_STEP_TOO_LARGE')
  t.match(r.body, /failed at step "login page": GET .*\/login: the answer is larger than 65536 bytes \(limits\.loginMaxBodyBytes\)/)
  t.equal(count(apps.biglogin, 'POST', '/login'), 0, 'the credentials were not sent')
})

t.test('a logged-out answer that never ends is cut, not drained forever: the login and replay go through', async (t) => {
  const r = await get('endless', `http://${apps.endless.host}/api/me`)
  t.equal(r.status, 200, r.body.slice(0, 200))
  t.same(JSON.parse(r.body), { user: 'alice' })
  t.equal(count(apps.endless, 'POST', '/api/login'), 1)
})

/** A raw client that sends one request and resets: on its first response byte, or after `ms`. */
async function resettingClient (profile: string, url: string, ms: number | null): Promise<void> {
  await new Promise<void>((resolve) => {
    const s = net.connect(proxy.port, '127.0.0.1', () => {
      s.write(`GET ${url} HTTP/1.1\r\nHost: ${new URL(url).host}\r\nX-Session-Profile: ${profile}\r\n\r\n`)
    })
    s.on('error', () => {})
    s.on('close', () => resolve())
    const reset = (): void => { s.resetAndDestroy() }
    if (ms !== null) setTimeout(reset, ms)
    else s.once('data', reset)
  })
}

t.test('clients that reset mid-download or while queued abort their upstream requests: another profile gets through', async (t) => {
  const url = `http://${apps.download.host}/big`
  await Promise.all([resettingClient('dl', url, null), resettingClient('dl', url, 300), resettingClient('dl', url, 300), resettingClient('dl', url, 300)])
  const r = await get('someone-else', `http://${apps.download.host}/small`, ['--max-time', '10'])
  t.equal(r.status, 200, 'the origin is not blocked')
  t.ok(count(apps.download, 'GET', '/big') <= 4)
})

t.test('a client that resets while waiting for a login is never replayed', async (t) => {
  const url = `http://${apps.waitlogin.host}/api/me`
  await resettingClient('waitlogin', url, 300)
  for (let i = 0; i < 100 && !(await events('waitlogin')).some((e) => e.type === 'login.succeeded'); i++) await new Promise((resolve) => setTimeout(resolve, 100))
  const next = await get('waitlogin', url)
  t.equal(next.status, 200, 'the login it started serves the next request')
  t.equal(count(apps.waitlogin, 'GET', '/api/me'), 2, 'the original request and the next one: no replay for the client that left')
  t.equal(count(apps.waitlogin, 'POST', '/api/login'), 1)
})

t.test('a secret file deleted after start fails only the logins that need it', async (t) => {
  rmSync(secretFile)
  const other = await get('sec', `http://${apps.elsewhere.host}/x`)
  t.equal(other.status, 200, 'another host of the profile still works')
  const jar = await adminGet(proxy, '/_session/profiles/sec/cookies')
  t.equal(jar.status, 200, 'the admin API still answers for the profile')
  const r = await get('sec', `http://${apps.secret.host}/api/me`)
  t.equal(r.status, 502)
  t.equal(errorCode(r.headers), 'SP_SECRET_UNAVAILABLE')
  t.match(r.body, /profiles\.sec\.autopilot\[0\]\.login\.password: cannot read secret file/)
  t.notOk(r.body.includes(SECRET))
  t.equal(count(apps.secret, 'POST', '/api/login'), 0)
})

t.test('nothing escaped: the proxy is still up and logged no unhandled error', async (t) => {
  t.equal(proxy.proc.exitCode, null)
  t.equal((await adminGet(proxy, '/_session/health')).status, 200)
  t.same(proxy.output.filter((l) => /unhandled|uncaught|managed exchange failed/i.test(l)), [])
})
