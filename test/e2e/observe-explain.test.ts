import t from 'tap'
import { CLI, cleanup, curl, echoCookies, freePort, run, startProxy, startUpstream, type ProxyProcess, type Upstream } from '../helpers/proxy.js'
import { sleep } from '../helpers/raw-client.js'

interface Verdict { name: string, domain: string, path: string, sent: boolean, reasons: Array<{ code: string, message: string }> }
interface Rule { name: string, value: string, rule: string, match: string, applies: boolean, note?: string }
interface Result { profile: string, url: string, method: string, site: string, cookies: Verdict[], cookieHeader: string, headers: Rule[], auth: Rule[], csrf: Rule[], notes: string[] }

interface Ctx { proxy: ProxyProcess, up: Upstream }

async function setup (t: { teardown: (fn: () => Promise<void>) => void }, config?: Record<string, unknown>): Promise<Ctx> {
  const up = await startUpstream(echoCookies())
  const proxy = await startProxy({
    config,
    args: ['--connect-to', `app.example.test:80:127.0.0.1:${up.port}`, '--connect-to', `api.app.example.test:80:127.0.0.1:${up.port}`, '--connect-to', `other.test:80:127.0.0.1:${up.port}`]
  })
  t.teardown(async () => { await proxy.stop(); await up.close(); cleanup(proxy.dataDir) })
  return { proxy, up }
}

async function set (ctx: Ctx, url: string, cookie: string): Promise<void> {
  const r = await curl(['-x', ctx.proxy.url, `${url}${url.includes('?') ? '&' : '?'}set=${encodeURIComponent(cookie)}`])
  if (r.status !== 200) throw new Error(`set: ${r.status}`)
}

async function explain (ctx: Ctx, url: string, extra: Record<string, string> = {}, profile = 'default'): Promise<Result> {
  const q = new URLSearchParams({ url, ...extra })
  const r = await fetch(`${ctx.proxy.url}/_session/profiles/${profile}/explain?${q.toString()}`)
  if (r.status !== 200) throw new Error(`explain: ${r.status} ${await r.text()}`)
  return await r.json() as Result
}

function verdict (r: Result, name: string): Verdict {
  const v = r.cookies.find((c) => c.name === name)
  if (v === undefined) throw new Error(`no verdict for ${name}`)
  return v
}

/** What the upstream actually received, to check explain against the real proxy. */
async function cookieSent (ctx: Ctx, url: string): Promise<string | null> {
  return (JSON.parse((await curl(['-x', ctx.proxy.url, url])).stdout) as { cookie: string | null }).cookie
}

t.test('sent: a matching cookie, with the Cookie header the proxy really sends', async (t) => {
  const ctx = await setup(t)
  await set(ctx, 'http://app.example.test/', 'sid=1; Path=/')
  await set(ctx, 'http://app.example.test/app/', 'deep=2; Path=/app')
  const r = await explain(ctx, 'http://app.example.test/app/page?q=1')
  t.match(r, { profile: 'default', url: 'http://app.example.test/app/page?q=1', method: 'GET', site: 'same-site' })
  t.match(verdict(r, 'sid'), { sent: true, reasons: [] })
  t.match(verdict(r, 'deep'), { sent: true, reasons: [] })
  t.equal(r.cookieHeader, 'deep=2; sid=1', 'longer paths first, as RFC 6265 orders them')
  t.equal(await cookieSent(ctx, 'http://app.example.test/app/page?q=1'), r.cookieHeader, 'what the upstream received')
})

t.test('not sent, reason domain', async (t) => {
  const ctx = await setup(t)
  await set(ctx, 'http://app.example.test/', 'wide=1; Domain=app.example.test; Path=/')
  const r = await explain(ctx, 'http://other.test/')
  t.match(verdict(r, 'wide'), { sent: false, reasons: [{ code: 'domain', message: /Domain=app\.example\.test does not domain-match other\.test/ }] })
  t.equal(await cookieSent(ctx, 'http://other.test/'), null)
})

t.test('not sent, reason host-only', async (t) => {
  const ctx = await setup(t)
  await set(ctx, 'http://app.example.test/', 'narrow=1; Path=/')
  const r = await explain(ctx, 'http://api.app.example.test/')
  t.match(verdict(r, 'narrow'), { sent: false, reasons: [{ code: 'host-only', message: /host-only cookie of app\.example\.test.*subdomain api\.app\.example\.test/ }] })
  t.equal(await cookieSent(ctx, 'http://api.app.example.test/'), null)
  t.match(verdict(await explain(ctx, 'http://other.test/'), 'narrow'), { reasons: [{ code: 'domain' }] }, 'an unrelated host is a domain mismatch, not host-only')
})

t.test('not sent, reason path', async (t) => {
  const ctx = await setup(t)
  await set(ctx, 'http://app.example.test/app/login', 'ctx=1; Path=/app')
  const r = await explain(ctx, 'http://app.example.test/application')
  t.match(verdict(r, 'ctx'), { sent: false, reasons: [{ code: 'path', message: 'Path=/app does not path-match /application' }] })
  t.equal(await cookieSent(ctx, 'http://app.example.test/application'), null)
})

t.test('not sent, reason secure (Secure over http)', async (t) => {
  const ctx = await setup(t)
  // A Secure cookie reaches the jar over https or, as here, imported from a browser's cookies.txt.
  const txt = '# Netscape HTTP Cookie File\napp.example.test\tFALSE\t/\tTRUE\t0\tsession\ts3cr3t\napp.example.test\tFALSE\t/\tFALSE\t0\ttheme\tdark\n'
  const put = await fetch(`${ctx.proxy.url}/_session/profiles/default/cookies.txt`, { method: 'PUT', body: txt })
  t.equal(put.status, 200)
  const r = await explain(ctx, 'http://app.example.test/account')
  t.match(verdict(r, 'session'), { sent: false, reasons: [{ code: 'secure', message: /Secure cookie: sent only over https, and this request is http/ }] })
  t.match(verdict(r, 'theme'), { sent: true })
  t.equal(r.cookieHeader, 'theme=dark')
  t.equal(await cookieSent(ctx, 'http://app.example.test/account'), 'theme=dark')
  t.match(verdict(await explain(ctx, 'https://app.example.test/account'), 'session'), { sent: true }, 'over https it would be sent')
})

t.test('not sent, reason expired', async (t) => {
  const ctx = await setup(t)
  await set(ctx, 'http://app.example.test/', 'short=1; Path=/; Max-Age=1')
  t.match(verdict(await explain(ctx, 'http://app.example.test/'), 'short'), { sent: true })
  await sleep(1200)
  const r = await explain(ctx, 'http://app.example.test/')
  t.match(verdict(r, 'short'), { sent: false, reasons: [{ code: 'expired', message: /^expired at .* s ago\); the jar drops it on its next lookup$/ }] })
  t.match(verdict(await explain(ctx, 'http://app.example.test/'), 'short'), { sent: false, reasons: [{ code: 'expired' }] }, 'explaining did not remove it from the jar')
  t.equal(await cookieSent(ctx, 'http://app.example.test/'), null)
})

t.test('not sent, reason same-site (for the site context asked about)', async (t) => {
  const ctx = await setup(t)
  await set(ctx, 'http://app.example.test/', 'strict=1; Path=/; SameSite=Strict')
  await set(ctx, 'http://app.example.test/', 'lax=1; Path=/; SameSite=Lax')
  await set(ctx, 'http://app.example.test/', 'plain=1; Path=/')
  const same = await explain(ctx, 'http://app.example.test/')
  t.same(same.cookies.map((c) => [c.name, c.sent]), [['lax', true], ['plain', true], ['strict', true]], 'the proxy itself: SameSite never applies')
  t.match(same.notes, [String, String, /SameSite does not restrict the proxy/])
  t.equal(await cookieSent(ctx, 'http://app.example.test/'), 'strict=1; lax=1; plain=1')

  const nav = await explain(ctx, 'http://app.example.test/', { site: 'cross-site-navigation' })
  t.match(verdict(nav, 'strict'), { sent: false, reasons: [{ code: 'same-site', message: 'SameSite=Strict: never sent on a cross-site-navigation request' }] })
  t.match(verdict(nav, 'lax'), { sent: true }, 'Lax goes with a top-level GET')
  const post = await explain(ctx, 'http://app.example.test/', { site: 'cross-site-navigation', method: 'POST' })
  t.match(verdict(post, 'lax'), { sent: false, reasons: [{ code: 'same-site', message: 'SameSite=Lax: sent on a cross-site navigation only with GET or HEAD, not POST' }] })
  const sub = await explain(ctx, 'http://app.example.test/', { site: 'cross-site' })
  t.same(sub.cookies.map((c) => [c.name, c.sent]), [['lax', false], ['plain', true], ['strict', false]])
  t.equal(sub.cookieHeader, 'plain=1')
})

t.test('several reasons at once are all listed', async (t) => {
  const ctx = await setup(t)
  await set(ctx, 'http://app.example.test/app/', 'multi=1; Path=/app; Max-Age=1; SameSite=Strict')
  await sleep(1200)
  const r = await explain(ctx, 'http://app.example.test/other', { site: 'cross-site' })
  t.same(verdict(r, 'multi').reasons.map((x) => x.code), ['path', 'same-site', 'expired'])
})

t.test('default headers and auth, with where they come from; secrets redacted', async (t) => {
  const ctx = await setup(t, {
    hosts: [
      { match: '*.example.test', headers: { 'User-Agent': 'tool/1.0', 'X-Tenant': 'acme' } },
      { match: 'api.example.com', headers: { 'X-Other': '1' } }
    ],
    profiles: {
      alice: { hosts: [{ match: 'app.example.test', headers: { 'X-Tenant': 'alice-co' }, auth: { type: 'bearer', token: { value: 'tok-secret' } } }] }
    }
  })
  const r = await explain(ctx, 'http://app.example.test/', {}, 'alice')
  t.same(r.headers, [
    { name: 'User-Agent', value: 'tool/1.0', rule: 'hosts[0]', match: '*.example.test', applies: true },
    { name: 'X-Tenant', value: 'acme', rule: 'hosts[0]', match: '*.example.test', applies: false, note: 'overridden by profiles.alice.hosts[0]' },
    { name: 'X-Tenant', value: 'alice-co', rule: 'profiles.alice.hosts[0]', match: 'app.example.test', applies: true }
  ])
  t.same(r.auth, [{ name: 'Authorization', value: 'Bearer <redacted>', rule: 'profiles.alice.hosts[0]', match: 'app.example.test', applies: true }])
  t.same(r.csrf, [])
  t.notMatch(JSON.stringify(r), /tok-secret/, 'the token never appears')
  const upstreamSaw = ctx.up.requests.length
  await curl(['-x', `http://alice@127.0.0.1:${ctx.proxy.port}`, '-H', 'User-Agent:', 'http://app.example.test/'])
  t.match(ctx.up.requests[upstreamSaw]!.headers, { 'x-tenant': 'alice-co', 'user-agent': 'tool/1.0', authorization: 'Bearer tok-secret' }, 'what the proxy really sent')
  t.same((await explain(ctx, 'http://app.example.test/')).auth, [], 'the default profile has no auth rule')
})

t.test('bad requests are 400 with a code', async (t) => {
  const ctx = await setup(t)
  await set(ctx, 'http://app.example.test/', 'a=1')
  for (const [q, code] of [['', 'SP_EXPLAIN_BAD_URL'], ['?url=notaurl', 'SP_EXPLAIN_BAD_URL'], ['?url=ftp%3A%2F%2Fx%2F', 'SP_EXPLAIN_BAD_URL'], ['?url=http%3A%2F%2Fx%2F&method=G%20T', 'SP_EXPLAIN_BAD_METHOD'], ['?url=http%3A%2F%2Fx%2F&site=moon', 'SP_EXPLAIN_BAD_SITE']] as const) {
    const r = await fetch(`${ctx.proxy.url}/_session/profiles/default/explain${q}`)
    t.equal(r.status, 400, q)
    t.match(await r.json(), { error: code })
  }
  t.equal((await fetch(`${ctx.proxy.url}/_session/profiles/nobody/explain?url=http%3A%2F%2Fx%2F`)).status, 404)
})

t.test('session-proxy explain prints the same as a table', async (t) => {
  const ctx = await setup(t)
  const txt = 'app.example.test\tFALSE\t/\tTRUE\t0\tsession\ts3cr3t\napp.example.test\tFALSE\t/\tFALSE\t0\ttheme\tdark\n'
  await fetch(`${ctx.proxy.url}/_session/profiles/alice/cookies.txt`, { method: 'PUT', body: txt })
  const out = await run(process.execPath, [CLI, 'explain', 'http://app.example.test/account', '--profile', 'alice', '--host', '127.0.0.1', '--port', String(ctx.proxy.port)])
  t.equal(out.code, 0, out.stderr)
  const text = out.stdout.toString('utf8')
  t.match(text, /^Profile alice · GET http:\/\/app\.example\.test\/account · same-site\n/)
  t.match(text, /\nCOOKIE\s+DOMAIN\+PATH\s+SENT\s+WHY NOT\n/)
  t.match(text, /\nsession\s+app\.example\.test\/\s+no\s+secure: Secure cookie: sent only over https, and this request is http/)
  t.match(text, /\ntheme\s+app\.example\.test\/\s+yes\n/)
  t.match(text, /\nCookie header: theme=dark\n/)
  t.notMatch(text, /s3cr3t/, 'values are not printed')

  const json = await run(process.execPath, [CLI, 'explain', 'http://app.example.test/account', '--profile', 'alice', '--json', '--port', String(ctx.proxy.port), '--host', '127.0.0.1'])
  t.match(JSON.parse(json.stdout.toString('utf8')), { profile: 'alice', cookieHeader: 'theme=dark' })

  const env = await run(process.execPath, [CLI, 'explain', 'http://app.example.test/account', '--profile', 'alice'], { env: { SESSION_PROXY_PORT: String(ctx.proxy.port), SESSION_PROXY_HOST: '127.0.0.1' } })
  t.equal(env.code, 0, 'the address from SESSION_PROXY_* like the server')

  const missing = await run(process.execPath, [CLI, 'explain', 'http://x/', '--profile', 'nobody', '--port', String(ctx.proxy.port), '--host', '127.0.0.1'])
  t.equal(missing.code, 1)
  t.match(missing.stderr, /no profile named "nobody"/)
  const closed = await freePort()
  const down = await run(process.execPath, [CLI, 'explain', 'http://x/', '--port', String(closed), '--host', '127.0.0.1'])
  t.equal(down.code, 1)
  t.match(down.stderr, `cannot reach the proxy at http://127.0.0.1:${closed}: ECONNREFUSED`)
  const usage = await run(process.execPath, [CLI, 'explain'])
  t.equal(usage.code, 2)
  t.match(usage.stderr, /give exactly one URL/)
})
