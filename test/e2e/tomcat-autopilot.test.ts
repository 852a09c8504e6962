/**
 * Interop with a real Tomcat 10 (Debian's tomcat10): FORM login driven by
 * the proxy's config, transparent renewal of a session ended on the server,
 * RestCsrfPreventionFilter handled without the client knowing any token, and
 * two profiles logged in as two users at once.
 */
import t from 'tap'
import { isTomcatInstalled, startTomcat, type TomcatInstance } from '../helpers/tomcat.js'
import { adminGet, cleanup, curl, runCli, startProxy, type ProxyProcess } from '../helpers/proxy.js'

if (!isTomcatInstalled()) {
  t.fail('tomcat10 is not installed: .ci/run installs it (apt-get install tomcat10)')
} else {
  let tomcat: TomcatInstance
  let proxy: ProxyProcess

  t.before(async () => {
    tomcat = await startTomcat()
    const rule = (user: string): Record<string, unknown> => ({
      match: `127.0.0.1:${tomcat.port}`,
      baseUrl: `${tomcat.baseUrl}/app`,
      login: { preset: 'tomcat-form', username: user, password: { env: `${user.toUpperCase()}_PASSWORD` }, ...(user === 'bob' ? { startPath: '/api/whoami' } : {}) },
      csrf: [{ preset: 'tomcat' }]
    })
    proxy = await startProxy({
      env: { ALICE_PASSWORD: 'alice-secret', BOB_PASSWORD: 'bob-secret', MALLORY_PASSWORD: 'wrong' },
      config: {
        profiles: {
          alice: { autopilot: [rule('alice')] },
          bob: { autopilot: [rule('bob')] },
          mallory: { autopilot: [{ ...rule('mallory'), loginBackoffSeconds: 30 }] }
        }
      }
    })
  })
  t.teardown(async () => {
    await proxy?.stop()
    await tomcat?.stop()
    if (proxy !== undefined) cleanup(proxy.dataDir)
  })

  const as = (profile: string): string[] => ['-x', `http://${profile}@127.0.0.1:${proxy.port}`]
  const whoami = async (profile: string): Promise<{ status: number, json: { user?: string, session?: string } | null, body: string }> => {
    const r = await curl([...as(profile), `${tomcat.appUrl}/api/whoami`])
    let json = null
    try { json = JSON.parse(r.stdout) } catch {}
    return { status: r.status, json, body: r.stdout }
  }

  t.test('FORM login is done by the proxy: the client only sees its answer', async (t) => {
    const r = await whoami('alice')
    t.equal(r.status, 200)
    t.equal(r.json?.user, 'alice', `logged in as alice (got ${r.body.slice(0, 200)})`)
    const again = await whoami('alice')
    t.equal(again.json?.session, r.json?.session, 'the next request reuses the session, no new login')
    const events = (await adminGet(proxy, '/_session/profiles/alice/events')).json as { events: Array<{ type: string, fixation?: boolean }> }
    const types = events.events.map((e) => e.type)
    t.ok(types.includes('session.loggedOut'), 'the login page was recognised as logged out')
    t.equal(types.filter((x) => x === 'login.succeeded').length, 1, 'one login')
    t.ok(types.includes('request.replayed'))
  })

  t.test('a session ended on the server is renewed transparently', async (t) => {
    const before = await whoami('alice')
    const killed = await curl([...as('alice'), `${tomcat.appUrl}/secure/invalidate`])
    t.equal(killed.status, 200, 'the server session was invalidated')
    const after = await whoami('alice')
    t.equal(after.status, 200)
    t.equal(after.json?.user, 'alice', 'the client request succeeded')
    t.not(after.json?.session, before.json?.session, 'in a new server session')
  })

  t.test('RestCsrfPreventionFilter: POSTs succeed without the client knowing any token', async (t) => {
    const post = await curl([...as('alice'), '-H', 'content-type: application/json', '--data-binary', '{"name":"x"}', `${tomcat.appUrl}/api/items`])
    t.equal(post.status, 201, post.stdout.slice(0, 300))
    // After the session dies, the token dies with it: a POST must still work.
    await curl([...as('alice'), `${tomcat.appUrl}/secure/invalidate`])
    const afterRenewal = await curl([...as('alice'), '-H', 'content-type: application/json', '--data-binary', '{"name":"y"}', `${tomcat.appUrl}/api/items`])
    t.equal(afterRenewal.status, 201, 'a POST into a dead session is logged in, given a token and replayed')
    const types = ((await adminGet(proxy, '/_session/profiles/alice/events')).json as { events: Array<{ type: string }> }).events.map((e) => e.type)
    t.ok(types.includes('csrf.captured') || types.includes('csrf.refreshed'), 'CSRF tokens were captured')
  })

  t.test('two profiles are logged in as two users at once', async (t) => {
    const [a, b] = await Promise.all([whoami('alice'), whoami('bob')])
    t.equal(a.json?.user, 'alice')
    t.equal(b.json?.user, 'bob')
    t.not(a.json?.session, b.json?.session)
  })

  t.test('concurrent requests after the session died share one login', async (t) => {
    await curl([...as('bob'), `${tomcat.appUrl}/secure/invalidate`])
    const countLogins = async (): Promise<number> => ((await adminGet(proxy, '/_session/profiles/bob/events')).json as { events: Array<{ type: string }> }).events.filter((e) => e.type === 'login.started').length
    const before = await countLogins()
    const results = await Promise.all(Array.from({ length: 6 }, async () => await whoami('bob')))
    t.same(results.map((r) => r.json?.user), Array(6).fill('bob'), 'every request succeeded')
    t.equal(await countLogins() - before, 1, 'with a single login')
  })

  t.test('login on demand: admin API and `session-proxy login`', async (t) => {
    const before = ((await adminGet(proxy, '/_session/profiles/bob/events')).json as { events: Array<{ type: string }> }).events.filter((e) => e.type === 'login.succeeded').length
    const api = await curl(['-X', 'POST', '-H', 'x-session-proxy-admin: 1', `${proxy.url}/_session/profiles/bob/login`])
    t.equal(api.status, 200, api.stdout)
    t.match(JSON.parse(api.stdout), { profile: 'bob', logins: [{ host: `127.0.0.1:${tomcat.port}`, flow: 'tomcat-form', ok: true }] })
    const cli = runCli(['login', 'bob', '--port', String(proxy.port), '--host', '127.0.0.1'])
    t.equal(cli.status, 0, cli.stderr)
    t.match(cli.stdout, new RegExp(`bob: logged in to 127.0.0.1:${tomcat.port} \\(tomcat-form, \\d+ ms\\)`))
    const after = ((await adminGet(proxy, '/_session/profiles/bob/events')).json as { events: Array<{ type: string }> }).events.filter((e) => e.type === 'login.succeeded').length
    t.equal(after - before, 2, 'each ran a login')
    t.equal((await whoami('bob')).json?.user, 'bob', 'and the session works')
    const noStart = await curl(['-X', 'POST', '-H', 'x-session-proxy-admin: 1', `${proxy.url}/_session/profiles/alice/login`])
    t.equal(noStart.status, 502, 'tomcat-form without startPath cannot log in on demand')
    t.match(JSON.parse(noStart.stdout).message, /set login.startPath to a URL under the security constraint/)
    const none = await curl(['-X', 'POST', '-H', 'x-session-proxy-admin: 1', `${proxy.url}/_session/profiles/default/login`])
    t.equal(none.status, 404)
    t.match(JSON.parse(none.stdout), { error: 'SP_NO_LOGIN', message: /has no login flow/ })
    const cliFail = runCli(['login', 'default', '--port', String(proxy.port)])
    t.equal(cliFail.status, 1)
    t.match(cliFail.stderr, /session-proxy login: profile "default" has no login flow/)
  })

  t.test('a failed login gives a clear 502 naming the step, and backs off', async (t) => {
    const r = await whoami('mallory')
    t.equal(r.status, 502)
    t.match(r.body, /login "tomcat-form" failed at step "j_security_check": POST .*j_security_check answered 200/)
    const again = await whoami('mallory')
    t.equal(again.status, 502)
    t.match(again.body, /failed recently; next attempt in \d+ s/, 'no new login during the back-off')
    const started = ((await adminGet(proxy, '/_session/profiles/mallory/events')).json as { events: Array<{ type: string }> }).events.filter((e) => e.type === 'login.started').length
    t.equal(started, 1, 'the login ran once')
  })
}
