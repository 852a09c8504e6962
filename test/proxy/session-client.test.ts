/**
 * session-client.ts: the requests the proxy makes for itself (login steps,
 * CSRF refreshes), through the real pool to real loopback upstreams: bounded
 * in time and bytes (and cut upstream when over), abortable by the client's
 * signal, one value per header name, cookies stored in the profile's jar.
 */
import t from 'tap'
import { loadConfig } from '../../src/config/load.js'
import { createLogger } from '../../src/log.js'
import { createSessionProxy } from '../../src/server.js'
import { sendWithSession } from '../../src/proxy/session-client.js'
import { Writable } from 'node:stream'
import { cleanup, startUpstream, tempDir } from '../helpers/proxy.js'

const LIMITS = { timeoutMs: 400, maxBodyBytes: 1024 }

t.test('session requests: limits, aborts, headers, cookies', async (t) => {
  const closed: string[] = []
  const up = await startUpstream((req, res) => {
    req.resume()
    res.on('close', () => { if (!res.writableFinished) closed.push(req.url!) })
    if (req.url === '/hang') return
    if (req.url === '/big') { res.writeHead(200, { 'content-type': 'text/plain' }); res.write(Buffer.alloc(4096, 0x61)); return }
    if (req.url === '/slow') { setTimeout(() => { res.writeHead(200); res.end('late') }, 5000).unref(); return }
    res.writeHead(200, { 'content-type': 'application/json', 'set-cookie': 'SID=s1; Path=/' })
    res.end(JSON.stringify({ headers: req.rawHeaders }))
  })
  const dataDir = tempDir()
  const { config } = loadConfig({
    env: {},
    flags: { host: '127.0.0.1', port: 0, dataDir, profiles: { p: { hosts: [{ match: `127.0.0.1:${up.port}`, headers: { 'X-Auth-Token': 'default', 'X-Tenant': 'acme' } }] } } }
  })
  const sp = createSessionProxy({ config, log: createLogger('warn', { pretty: false, destination: new Writable({ write (_c, _e, cb) { cb() } }) }), version: 'test' })
  t.teardown(async () => {
    await sp.close()
    await up.close()
    cleanup(dataDir)
  })
  const deps = sp.deps
  const profile = sp.profiles.get('p')
  const url = (path: string): string => `${up.origin}${path}`

  const ok = await sendWithSession(deps, profile, { method: 'GET', url: url('/ok'), headers: [['X-Step', 'own'], ['X-Tenant', 'step']] }, 1, [['x-auth-token', 'X-Auth-Token', 'session'], ['x-step', 'X-Step', 'autopilot']], { limits: LIMITS })
  t.equal(ok.status, 200)
  const sent = (JSON.parse(ok.body) as { headers: string[] }).headers
  const values = (name: string): string[] => sent.filter((_v, i) => i % 2 === 1 && sent[i - 1]!.toLowerCase() === name)
  t.same(values('x-auth-token'), ['session'], "one value: the autopilot's session value over the host default")
  t.same(values('x-step'), ['own'], "the step's own header wins")
  t.same(values('x-tenant'), ['step'])
  t.ok(ok.cookiesChanged, 'the Set-Cookie changed the jar')
  t.match(profile.jar.cookieHeader(url('/'), url('/')), /SID=s1/)

  const hang = await sendWithSession(deps, profile, { method: 'GET', url: url('/hang') }, 2, [], { limits: LIMITS }).catch((e: unknown) => e)
  t.match(hang, { code: 'SP_LOGIN_STEP_TIMEOUT', statusCode: 502, message: /^GET http:\/\/127\.0\.0\.1:\d+\/hang: no complete answer within 400 ms \(limits\.loginStepTimeoutMs\)$/ })

  const big = await sendWithSession(deps, profile, { method: 'GET', url: url('/big') }, 3, [], { limits: LIMITS }).catch((e: unknown) => e)
  t.match(big, { code: 'SP_LOGIN_STEP_TOO_LARGE', message: /the answer is larger than 1024 bytes \(limits\.loginMaxBodyBytes\)/ })

  const ac = new AbortController()
  setTimeout(() => ac.abort(), 100)
  const gone = await sendWithSession(deps, profile, { method: 'GET', url: url('/slow') }, 4, [], { limits: { ...LIMITS, timeoutMs: 10_000 }, signal: ac.signal }).catch((e: unknown) => e)
  t.match(gone, { code: 'SP_CLIENT_GONE' })

  const before = up.requests.length
  const pre = await sendWithSession(deps, profile, { method: 'GET', url: url('/ok') }, 5, [], { limits: LIMITS, signal: AbortSignal.abort() }).catch((e: unknown) => e)
  t.match(pre, { code: 'SP_CLIENT_GONE' })

  for (let i = 0; i < 50 && closed.length < 3; i++) await new Promise((resolve) => setTimeout(resolve, 50))
  t.same(closed.sort(), ['/big', '/hang', '/slow'], 'each request over its limit, or no longer wanted, was cut upstream')
  t.equal(up.requests.length, before, 'an already aborted request is not sent')

  const refused = await sendWithSession(deps, profile, { method: 'GET', url: 'http://127.0.0.1:1/' }, 6, [], { limits: LIMITS }).catch((e: unknown) => e)
  t.match(refused, { statusCode: 502, code: /^SP_UPSTREAM_/ })
})
