import t from 'tap'
import type { UpstreamHandler } from '../helpers/proxy.js'
import { adminGet, cleanup, curl, echoCookies, startProxy } from '../helpers/proxy.js'
import { createTestCa, startHttpsUpstream } from '../helpers/tls.js'

/** echoCookies plus redirects: to its own origin (absolute and relative) and elsewhere. */
function app (ownOrigin: () => string): UpstreamHandler {
  const echo = echoCookies()
  return (req, res) => {
    const u = new URL(req.url!, 'http://x')
    const to = u.searchParams.get('to')
    if (u.pathname.endsWith('/redirect')) {
      const location = to === 'absolute' ? `${ownOrigin()}${u.pathname.replace(/redirect$/, 'landing')}` : to === 'relative' ? u.pathname.replace(/redirect$/, 'landing') : 'https://elsewhere.example.test/'
      res.writeHead(302, { location, 'set-cookie': 'visited=1; Path=/; Secure; HttpOnly' })
      res.end()
      return
    }
    echo(req, res)
  }
}

const cookieOf = (stdout: string): string | null => (JSON.parse(stdout) as { cookie: string | null }).cookie

t.test('reverse mode: a client with no proxy support keeps a session', async (t) => {
  const ca = createTestCa()
  let origin = ''
  const up = await startHttpsUpstream(app(() => origin), ca)
  origin = up.origin
  const proxy = await startProxy({ args: ['--reverse', up.origin, '--upstream-ca', ca.file] })
  t.teardown(async () => { await proxy.stop(); await up.close(); cleanup(proxy.dataDir, ca.dir) })

  const first = await curl([`${proxy.url}/login?set=${encodeURIComponent('SESSION=R1; Path=/; Secure; HttpOnly; Domain=localhost')}`])
  t.equal(first.status, 200)
  t.equal(cookieOf(first.stdout), null)
  t.equal(up.requests[0]!.headers.host, `localhost:${up.port}`, 'Host is the upstream, not the sidecar')

  const second = await curl([`${proxy.url}/api/items?x=1`])
  t.equal(cookieOf(second.stdout), 'SESSION=R1', 'the next plain curl is in the session (a Secure cookie, as the upstream is https)')
  t.equal(up.requests.at(-1)!.url, '/api/items?x=1')

  const abs = await curl(['-D', '-', '-o', '/dev/null', `${proxy.url}/a/redirect?to=absolute`])
  t.match(abs.stdout, new RegExp(`location: ${proxy.url}/a/landing\\r?\\n`, 'i'), "a redirect to the upstream's origin comes back through the proxy")
  const rel = await curl(['-D', '-', '-o', '/dev/null', `${proxy.url}/a/redirect?to=relative`])
  t.match(rel.stdout, /location: \/a\/landing\r?\n/i, 'a relative redirect stays relative')
  const away = await curl(['-D', '-', '-o', '/dev/null', `${proxy.url}/a/redirect?to=away`])
  t.match(away.stdout, /location: https:\/\/elsewhere\.example\.test\/\r?\n/i, 'a redirect to another origin is left alone')

  const followed = await curl(['-L', `${proxy.url}/b/redirect?to=absolute`])
  t.equal(followed.status, 200)
  t.same(JSON.parse(followed.stdout), { cookie: 'SESSION=R1; visited=1', path: '/b/landing' }, 'curl -L follows it, with the cookie set on the redirect')

  const bob = await curl(['-H', 'X-Session-Profile: bob', `${proxy.url}/`])
  t.equal(cookieOf(bob.stdout), null, 'X-Session-Profile picks another profile')
  t.notOk(up.requests.at(-1)!.headers['x-session-profile'])

  const admin = await adminGet(proxy, '/_session/profiles')
  t.equal(admin.status, 200, '/_session/ stays the admin API')
  t.match(admin.json, { profiles: [{ name: 'bob' }, { name: 'default', cookies: 2 }] })
})

t.test('reverse mode with a base path', async (t) => {
  const ca = createTestCa()
  let origin = ''
  const up = await startHttpsUpstream(app(() => origin), ca)
  origin = up.origin
  const proxy = await startProxy({ args: ['--reverse', `${up.origin}/v1/`, '--upstream-ca', ca.file] })
  t.teardown(async () => { await proxy.stop(); await up.close(); cleanup(proxy.dataDir, ca.dir) })

  const r = await curl([`${proxy.url}/items?q=2`])
  t.equal(JSON.parse(r.stdout).path, '/v1/items')
  const abs = await curl(['-D', '-', '-o', '/dev/null', `${proxy.url}/x/redirect?to=absolute`])
  t.match(abs.stdout, new RegExp(`location: ${proxy.url}/x/landing\\r?\\n`, 'i'), 'the base path is taken off absolute redirects')
  const rel = await curl(['-D', '-', '-o', '/dev/null', `${proxy.url}/x/redirect?to=relative`])
  t.match(rel.stdout, /location: \/x\/landing\r?\n/i, 'and off relative ones')
})
