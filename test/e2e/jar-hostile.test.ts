/**
 * The jar only ever holds cookies it can send, whatever an upstream or an
 * import offers: far expiries are clamped (no RangeError, no 500 listing
 * after a restart), unsendable cookies.txt values are refused whole with
 * the jar and its file untouched, and the caps keep a 20,000-line import
 * cheap while other requests are served.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { startRawCookieServer, type RawCookieServer } from '../helpers/raw-cookie-server.js'
import { adminGet, cleanup, curl, startProxy, tempDir, type ProxyProcess } from '../helpers/proxy.js'
import { eventsOf } from '../helpers/events.js'

const MAX_ISO = '9999-12-31T23:59:59.000Z'

interface Listed { name: string, value: string, expires: string | null }

async function listCookies (proxy: ProxyProcess, profile = 'default'): Promise<{ status: number, cookies: Listed[] }> {
  const r = await adminGet(proxy, `/_session/profiles/${profile}/cookies`)
  return { status: r.status, cookies: (r.json as { cookies?: Listed[] } | null)?.cookies ?? [] }
}

async function sentCookie (proxy: ProxyProcess, profile = 'default'): Promise<{ status: number, cookie: string | null }> {
  const r = await curl(['-x', `http://${profile}@127.0.0.1:${proxy.port}`, 'http://app.test/echo'])
  return { status: r.status, cookie: r.status === 200 ? (JSON.parse(r.stdout) as { cookie: string | null }).cookie : null }
}

async function putCookiesTxt (proxy: ProxyProcess, text: string, profile = 'default'): Promise<{ status: number, json: Record<string, unknown> }> {
  const r = await curl(['-X', 'PUT', '--data-binary', '@-', `${proxy.url}/_session/profiles/${profile}/cookies.txt`], text)
  return { status: r.status, json: JSON.parse(r.stdout) as Record<string, unknown> }
}

const row = (...f: string[]): string => f.join('\t')

async function setup (t: Test, setCookies: Record<string, string[]>, config?: Record<string, unknown>): Promise<{ up: RawCookieServer, proxy: ProxyProcess, restart: () => Promise<ProxyProcess> }> {
  const up = await startRawCookieServer((path) => setCookies[path] ?? null)
  const args = ['--connect-to', `:80:127.0.0.1:${up.port}`]
  let proxy = await startProxy({ args, logLevel: 'warn', config })
  t.teardown(async () => { await proxy.stop(); await up.close(); cleanup(proxy.dataDir) })
  return {
    up,
    proxy,
    restart: async () => {
      await proxy.stop()
      proxy = await startProxy({ args, logLevel: 'warn', config, dataDir: proxy.dataDir })
      return proxy
    }
  }
}

t.test('a Set-Cookie with a Max-Age beyond year 9999 is clamped: no crash, listing works, before and after a restart', async (t) => {
  const { proxy, restart } = await setup(t, {
    '/far': ['a=1; Max-Age=99999999999999', 'b=2; Max-Age=' + '9'.repeat(400)]
  })
  const res = await curl(['-i', '-x', proxy.url, 'http://app.test/far'])
  t.equal(res.status, 200, 'the response reaches the client')
  t.match(res.stdout, /Set-Cookie: a=1; Max-Age=99999999999999/i, 'with the upstream\'s headers')
  t.equal(proxy.proc.exitCode, null, 'the proxy is still running')
  const listed = await listCookies(proxy)
  t.equal(listed.status, 200)
  t.same(listed.cookies.map((c) => [c.name, c.expires]), [['a', MAX_ISO], ['b', MAX_ISO]])
  t.same(await sentCookie(proxy), { status: 200, cookie: 'a=1; b=2' })
  const set = await eventsOf(proxy, 'cookie.set')
  t.same(set.map((e) => (e.cookie as { expires: string }).expires), [MAX_ISO, MAX_ISO], 'the events describe the clamped expiry')

  const again = await restart()
  const reloaded = await listCookies(again)
  t.equal(reloaded.status, 200, 'the journal holds what the jar holds: the listing works after a restart')
  t.same(reloaded.cookies.map((c) => [c.name, c.expires]), [['a', MAX_ISO], ['b', MAX_ISO]])
  t.same(await sentCookie(again), { status: 200, cookie: 'a=1; b=2' })
  const del = await curl(['-X', 'DELETE', `${again.url}/_session/profiles/default/cookies`])
  t.equal(del.status, 200, 'the next change to those cookies works too')
  t.equal(again.proc.exitCode, null)
})

t.test('a cookies.txt value a Cookie header cannot carry is refused whole; the jar and its file stay as they were', async (t) => {
  const { proxy, restart } = await setup(t, { '/keep': ['keep=1; Path=/'] })
  await curl(['-x', proxy.url, 'http://app.test/keep'])
  const file = join(proxy.dataDir, 'jars', 'default.jsonl')
  const before = readFileSync(file)
  for (const [label, bad] of [
    ['a non-latin1 value', row('app.test', 'FALSE', '/', 'FALSE', '0', 'euro', '\u20ac')],
    ['a DEL in a value', row('app.test', 'FALSE', '/', 'FALSE', '0', 'del', 'x\u007fy')],
    ['a CR in a value', row('app.test', 'FALSE', '/', 'FALSE', '0', 'cr', 'x\ry')],
    ['a NUL in a name', row('app.test', 'FALSE', '/', 'FALSE', '0', 'n\u0000', 'x')]
  ] as const) {
    const text = ['# Netscape HTTP Cookie File', row('app.test', 'FALSE', '/', 'FALSE', '0', 'fine', '1'), row('app.test', 'FALSE', '/', 'FALSE', '99999999999999999999', 'far', '1'), bad, ''].join('\n')
    const put = await putCookiesTxt(proxy, text)
    t.equal(put.status, 400, label)
    t.match(put.json, { error: 'SP_COOKIES_TXT_INVALID', message: /nothing imported:\nline 4: / }, `${label}: the message names the line`)
    t.same(await sentCookie(proxy), { status: 200, cookie: 'keep=1' }, `${label}: requests still work and carry the old jar`)
  }
  t.same(readFileSync(file), before, 'the jar file is byte for byte unchanged')
  const again = await restart()
  t.same(await sentCookie(again), { status: 200, cookie: 'keep=1' }, 'and so is the jar after a restart')
})

t.test('a cookies.txt expiry beyond year 9999 is clamped, and the import replaces the jar', async (t) => {
  const { proxy, restart } = await setup(t, { '/keep': ['keep=1; Path=/'] })
  await curl(['-x', proxy.url, 'http://app.test/keep'])
  const text = [row('app.test', 'FALSE', '/', 'FALSE', '99999999999999999999', 'far', '1'), row('app.test', 'FALSE', '/', 'FALSE', '99999999999999', 'near', '2'), ''].join('\n')
  const put = await putCookiesTxt(proxy, text)
  t.equal(put.status, 200)
  t.match(put.json, { imported: 2 })
  const listed = await listCookies(proxy)
  t.equal(listed.status, 200)
  t.same(listed.cookies.map((c) => [c.name, c.expires]), [['far', MAX_ISO], ['near', MAX_ISO]])
  t.same(await sentCookie(proxy), { status: 200, cookie: 'far=1; near=2' })
  const exported = await curl([`${proxy.url}/_session/profiles/default/cookies.txt`])
  t.match(exported.stdout, /\t253402300799\tfar\t1\n/, 'the export carries the clamped expiry')
  const again = await restart()
  t.equal((await listCookies(again)).status, 200)
  t.same(await sentCookie(again), { status: 200, cookie: 'far=1; near=2' })
})

t.test('a 20,000-line import is capped by LRU eviction while the proxy keeps answering', async (t) => {
  const { proxy, restart } = await setup(t, {}, { jar: { maxCookiesPerProfile: 3000, maxCookiesPerDomain: 180 } })
  const lines = ['# Netscape HTTP Cookie File']
  // 200 domains of 100 cookies: under the domain cap, 17,000 over the profile cap.
  for (let i = 0; i < 20_000; i++) lines.push(row(`d${i % 200}.app.test`, 'FALSE', '/', 'FALSE', '0', `c${i}`, String(i)))
  const importing = putCookiesTxt(proxy, lines.join('\n') + '\n', 'bulk')
  const concurrent = sentCookie(proxy, 'other')
  const [put, other] = await Promise.all([importing, concurrent])
  t.equal(put.status, 200)
  t.match(put.json, { profile: 'bulk', imported: 20_000 })
  t.same(other, { status: 200, cookie: null }, 'a request of another profile is answered')
  const listed = await listCookies(proxy, 'bulk')
  t.equal(listed.cookies.length, 3000, 'the profile cap holds')
  const kept = listed.cookies.map((c) => Number(c.value)).sort((a, b) => a - b)
  t.same([kept[0], kept[kept.length - 1]], [17_000, 19_999], 'the least recently used (the first lines) were evicted')
  const evicted = await eventsOf(proxy, 'cookie.evicted', 'bulk')
  t.ok(evicted.length > 0, 'cookie.evicted events are recorded')
  t.ok(evicted.every((e) => Number((e.cookie as { name: string }).name.slice(1)) < 17_000), 'only first lines were evicted')
  t.same(await sentCookie(proxy), { status: 200, cookie: null }, 'the proxy still answers afterwards')
  const again = await restart()
  t.equal((await listCookies(again, 'bulk')).cookies.length, 3000, 'the journal agrees after a restart')
})

t.test('a jar file from before this fix (a huge Max-Age, a CRLF value) loads without a 500 or a 502', async (t) => {
  const dataDir = tempDir()
  mkdirSync(join(dataDir, 'jars'), { recursive: true, mode: 0o700 })
  const now = new Date().toISOString()
  const record = (cookie: Record<string, unknown>): string => JSON.stringify({ op: 'set', cookie: { domain: 'app.test', path: '/', hostOnly: true, creation: now, lastAccessed: now, ...cookie } })
  writeFileSync(join(dataDir, 'jars', 'default.jsonl'), [
    record({ key: 'far', value: '1', maxAge: 99999999999999 }),
    record({ key: 'evil', value: 'x\r\nX-Injected: 1' }),
    record({ key: 'ok', value: '2' }),
    ''
  ].join('\n'), { mode: 0o600 })
  const up = await startRawCookieServer(() => null)
  const proxy = await startProxy({ args: ['--connect-to', `:80:127.0.0.1:${up.port}`], logLevel: 'warn', dataDir })
  t.teardown(async () => { await proxy.stop(); await up.close(); cleanup(dataDir) })
  const listed = await listCookies(proxy)
  t.equal(listed.status, 200)
  t.same(listed.cookies.map((c) => [c.name, c.expires]), [['far', MAX_ISO], ['ok', null]], 'the far expiry is clamped, the unsendable value is not loaded')
  t.same(await sentCookie(proxy), { status: 200, cookie: 'far=1; ok=2' }, 'requests to that host work')
})
