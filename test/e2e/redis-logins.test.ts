/**
 * Logins coordinated through Redis: a Tomcat FORM login done through one
 * replica serves the other; many replicas asking at once cause one login
 * (counted at the fixture); a replica killed mid-login does not block the
 * rest (its lock expires and another logs in).
 */
import http from 'node:http'
import t from 'tap'
import { isTomcatInstalled, startTomcat, type TomcatInstance } from '../helpers/tomcat.js'
import { adminGet, cleanup, curl, startProxy, startUpstream, type ProxyProcess, type Upstream } from '../helpers/proxy.js'
import { hasRedis, startRedis, type RedisServer } from '../helpers/redis.js'

/** basic-session login at GET /login (after `delayMs`), a session cookie, and /api/me that needs it. */
interface LoginApp { upstream: Upstream, started: () => number, delayMs: number }

async function loginApp (delayMs: number): Promise<LoginApp> {
  let started = 0
  const sessions = new Set<string>()
  const upstream = await startUpstream((req: http.IncomingMessage, res: http.ServerResponse) => {
    const url = new URL(req.url!, 'http://x')
    if (url.pathname === '/login') {
      started++
      const n = started
      setTimeout(() => {
        if (req.headers.authorization !== `Basic ${Buffer.from('alice:pw').toString('base64')}`) { res.writeHead(401).end(); return }
        const sid = `s${n}`
        sessions.add(sid)
        res.writeHead(204, { 'set-cookie': `SID=${sid}; Path=/; HttpOnly` }).end()
      }, delayMs)
      return
    }
    const sid = /SID=(\w+)/.exec(req.headers.cookie ?? '')?.[1]
    if (sid === undefined || !sessions.has(sid)) { res.writeHead(401, { 'content-type': 'text/plain' }).end('log in'); return }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ sid }))
  })
  return { upstream, started: () => started, delayMs }
}

if (!hasRedis()) {
  t.fail('redis-server is not installed: .ci/run installs it (apt-get install redis-server)')
} else {
  const proxies: ProxyProcess[] = []
  const servers: RedisServer[] = []
  const apps: Upstream[] = []
  t.teardown(async () => {
    for (const p of proxies) await p.stop().catch(() => {})
    for (const r of servers) await r.stop()
    for (const a of apps) await a.close()
    cleanup(...proxies.map((p) => p.dataDir), ...servers.map((r) => r.dir))
  })

  const replicas = async (n: number, redis: RedisServer, config: Record<string, unknown>): Promise<ProxyProcess[]> =>
    await Promise.all(Array.from({ length: n }, async () => {
      const p = await startProxy({ args: ['--store', redis.url], config })
      proxies.push(p)
      return p
    }))
  const appConfig = (app: LoginApp, redis: Record<string, unknown> = {}): Record<string, unknown> => ({
    redis,
    profiles: { alice: { autopilot: [{ match: `127.0.0.1:${app.upstream.port}`, baseUrl: app.upstream.origin, login: { preset: 'basic-session', username: 'alice', password: { value: 'pw' }, loginPath: '/login' } }] } }
  })
  const me = async (p: ProxyProcess, origin: string): Promise<{ status: number, sid: string | undefined }> => {
    const r = await curl(['-x', `http://alice@127.0.0.1:${p.port}`, `${origin}/api/me`])
    let sid: string | undefined
    try { sid = (JSON.parse(r.stdout) as { sid: string }).sid } catch {}
    return { status: r.status, sid }
  }

  t.test('one login serves many waiting replicas', async (t) => {
    const redis = await startRedis()
    servers.push(redis)
    const app = await loginApp(800)
    apps.push(app.upstream)
    const group = await replicas(4, redis, appConfig(app))
    const answers = await Promise.all(group.flatMap((p) => [me(p, app.upstream.origin), me(p, app.upstream.origin)]))
    t.same(answers.map((a) => a.status), answers.map(() => 200), 'every request answered after the login')
    t.equal(app.started(), 1, 'one login at the server for 4 replicas and 8 requests')
    t.same(new Set(answers.map((a) => a.sid)), new Set(['s1']), 'all in the session of that login')
  })

  t.test('a replica killed mid-login: its lock expires and another replica logs in', async (t) => {
    const redis = await startRedis()
    servers.push(redis)
    const app = await loginApp(1500)
    apps.push(app.upstream)
    const [a, b] = await replicas(2, redis, appConfig(app, { loginLockTtlMs: 1000, loginWaitMs: 20000 }))
    void me(a!, app.upstream.origin).catch(() => {})
    const deadline = Date.now() + 5000
    while (app.started() === 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20))
    t.equal(app.started(), 1, 'A started the login')
    await a!.kill9()
    const began = Date.now()
    const r = await me(b!, app.upstream.origin)
    t.equal(r.status, 200, 'B got through')
    t.equal(r.sid, 's2', 'with its own login, after the dead one')
    t.equal(app.started(), 2)
    t.ok(Date.now() - began < 10_000, `not blocked until loginWaitMs (${Date.now() - began} ms)`)
  })

  if (!isTomcatInstalled()) {
    t.fail('tomcat10 is not installed: .ci/run installs it (apt-get install tomcat10)')
  } else {
    t.test('two replicas share a Tomcat FORM login done through one of them', async (t) => {
      const redis = await startRedis()
      servers.push(redis)
      const tomcat: TomcatInstance = await startTomcat()
      t.teardown(async () => { await tomcat.stop() })
      const config = {
        profiles: {
          alice: {
            autopilot: [{
              match: `127.0.0.1:${tomcat.port}`,
              baseUrl: `${tomcat.baseUrl}/app`,
              login: { preset: 'tomcat-form', username: 'alice', password: { value: 'alice-secret' } },
              csrf: [{ preset: 'tomcat' }]
            }]
          }
        }
      }
      const [a, b] = await replicas(2, redis, config)
      const whoami = async (p: ProxyProcess): Promise<{ user?: string, session?: string }> => {
        const r = await curl(['-x', `http://alice@127.0.0.1:${p.port}`, `${tomcat.appUrl}/api/whoami`])
        try { return JSON.parse(r.stdout) as { user?: string, session?: string } } catch { return {} }
      }
      const first = await whoami(a!)
      t.equal(first.user, 'alice', 'A logged in')
      const second = await whoami(b!)
      t.equal(second.user, 'alice', 'B is logged in too')
      t.equal(second.session, first.session, 'in the same Tomcat session: B did not log in')
      const events = (await adminGet(b!, '/_session/profiles/alice/events')).json as { events: Array<{ type: string }> }
      t.notOk(events.events.some((e) => e.type === 'login.started'), 'no login at B')
    })
  }
}
