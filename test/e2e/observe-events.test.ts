import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { cleanup, curl, echoCookies, startProxy, startUpstream, type ProxyProcess, type Upstream } from '../helpers/proxy.js'
import { eventsOf, lastSeq, listEvents, openEventStream, type Ev } from '../helpers/events.js'
import { sleep } from '../helpers/raw-client.js'

const hash = (v: string): string => createHash('sha256').update(v).digest('hex').slice(0, 12)

interface Teardown { teardown: (fn: () => Promise<void> | void) => void }

async function setup (t: Teardown, config?: Record<string, unknown>, args: (up: Upstream) => string[] = () => []): Promise<{ proxy: ProxyProcess, up: Upstream, set: (cookie: string | string[], path?: string, host?: string) => Promise<void> }> {
  const up = await startUpstream(echoCookies())
  const proxy = await startProxy({ config, args: args(up) })
  t.teardown(async () => { await proxy.stop(); await up.close(); cleanup(proxy.dataDir) })
  const set = async (cookie: string | string[], path = '/', host = up.origin): Promise<void> => {
    const q = (Array.isArray(cookie) ? cookie : [cookie]).map((c) => `set=${encodeURIComponent(c)}`).join('&')
    const r = await curl(['-x', proxy.url, `${host}${path}?${q}`])
    if (r.status !== 200) throw new Error(`curl: ${r.status} ${r.stderr}`)
  }
  return { proxy, up, set }
}

t.test('cookie set, changed, deleted by the server, expired, deleted by admin, jar cleared', async (t) => {
  const { proxy, up, set } = await setup(t)

  await set('a=1; Path=/')
  const [created] = await eventsOf(proxy, 'cookie.set')
  t.match(created, { type: 'cookie.set', profile: 'default', cookie: { name: 'a', domain: '127.0.0.1', path: '/', valueHash: hash('1'), hostOnly: true } })
  t.type(created!.requestId, 'number', 'linked to the request that set it')

  await set('a=2; Path=/; Max-Age=600')
  const [changed] = await eventsOf(proxy, 'cookie.changed')
  t.match(changed, { cookie: { name: 'a', valueHash: hash('2') }, previous: { valueHash: hash('1'), expires: null }, changed: ['value', 'expires'] })
  t.ok(changed!.requestId! > created!.requestId!, 'a later request')
  t.same(await eventsOf(proxy, 'session.rotated'), [], 'a is not a session cookie: no rotation')

  await set('a=2; Path=/; Max-Age=600')
  t.equal((await eventsOf(proxy, 'cookie.changed')).length, 1, 'a Set-Cookie that changes nothing is no event')

  await set('a=; Path=/; Max-Age=0')
  t.match(await eventsOf(proxy, 'cookie.deleted'), [{ cookie: { name: 'a' }, by: 'server', requestId: Number }])

  await set('short=1; Path=/; Max-Age=1')
  await sleep(1100)
  const before = await lastSeq(proxy)
  await curl(['-x', proxy.url, `${up.origin}/`])
  t.match(await eventsOf(proxy, 'cookie.expired', 'default', before), [{ cookie: { name: 'short' }, requestId: null }], 'noticed on the next lookup, caused by no response')

  await set(['c=1; Path=/app', 'd=1; Path=/'])
  const del = await fetch(`${proxy.url}/_session/profiles/default/cookies/127.0.0.1/${encodeURIComponent('/app')}/c`, { method: 'DELETE' })
  t.equal(del.status, 200)
  t.match(await del.json(), { deleted: { name: 'c', path: '/app' } })
  t.match(await eventsOf(proxy, 'cookie.deleted'), [{ by: 'server' }, { cookie: { name: 'c', path: '/app' }, by: 'admin', requestId: null }])
  const missing = await fetch(`${proxy.url}/_session/profiles/default/cookies/127.0.0.1/${encodeURIComponent('/app')}/c`, { method: 'DELETE' })
  t.equal(missing.status, 404)
  t.match(await missing.json(), { error: 'SP_COOKIE_NOT_FOUND' })

  t.equal((await fetch(`${proxy.url}/_session/profiles/default/cookies`, { method: 'DELETE' })).status, 200)
  t.match(await eventsOf(proxy, 'jar.cleared'), [{ requestId: null }])
  const page = await listEvents(proxy)
  t.same(page.events.map((e) => e.seq), page.events.map((_e, i) => i + 1), 'seq counts 1, 2, 3, ...')
})

t.test('cookie.evicted when a domain exceeds jar.maxCookiesPerDomain', async (t) => {
  const { proxy, set } = await setup(t, { jar: { maxCookiesPerDomain: 2 } })
  await set('x1=1')
  await sleep(5)
  await set('x2=1')
  await sleep(5)
  await set('x3=1')
  t.match(await eventsOf(proxy, 'cookie.evicted'), [{ cookie: { name: 'x1' }, requestId: Number }], 'the least recently used goes, caused by the request that added x3')
  const setX3 = (await eventsOf(proxy, 'cookie.set')).find((e) => (e.cookie as { name: string }).name === 'x3')!
  t.equal((await eventsOf(proxy, 'cookie.evicted'))[0]!.requestId, setX3.requestId)
})

t.test('cookie.rejected, with the reason classified, one case per reason', async (t) => {
  const { proxy, set } = await setup(t, undefined, (up) => [
    '--connect-to', `www.example.co.uk:80:127.0.0.1:${up.port}`,
    '--connect-to', `app.example.test:80:127.0.0.1:${up.port}`
  ])
  const cases: Array<[string, string, string | null, string]> = [
    ['parse-error', '=novalue', null, 'http://app.example.test'],
    ['public-suffix', 'ps=1; Domain=co.uk', 'ps', 'http://www.example.co.uk'],
    ['domain-mismatch', 'dm=1; Domain=other.test', 'dm', 'http://app.example.test'],
    ['secure-over-http', 'sec=1; Secure', 'sec', 'http://app.example.test'],
    ['secure-prefix', '__Secure-sp=1', '__Secure-sp', 'http://app.example.test'],
    ['host-prefix', '__Host-hp=1; Path=/app', '__Host-hp', 'http://app.example.test']
  ]
  for (const [reason, line, name, host] of cases) {
    const before = await lastSeq(proxy)
    await set(line, '/app/x', host)
    const rejected = await eventsOf(proxy, 'cookie.rejected', 'default', before)
    t.match(rejected, [{ reason, name, url: `${host}/app/x`, requestId: Number, message: String }], `${reason}: ${line}`)
  }
  t.equal((await fetch(`${proxy.url}/_session/profiles/default/cookies`).then(async (r) => await r.json()) as { cookies: unknown[] }).cookies.length, 0, 'none of them was stored')
})

t.test('session.rotated for JSESSIONID and SESSION, and for names in events.sessionCookies', async (t) => {
  const { proxy, set } = await setup(t, { events: { sessionCookies: ['JSESSIONID', 'SESSION', 'sid'] } })
  await set('JSESSIONID=AAA; Path=/; HttpOnly')
  t.same(await eventsOf(proxy, 'session.rotated'), [], 'the first session id is not a rotation')
  await set('JSESSIONID=BBB; Path=/; HttpOnly', '/login')
  const [rotated] = await eventsOf(proxy, 'session.rotated')
  t.match(rotated, { name: 'JSESSIONID', domain: '127.0.0.1', path: '/', from: hash('AAA'), to: hash('BBB'), fixation: false, loginSeq: null, requestId: Number })
  const changed = (await eventsOf(proxy, 'cookie.changed'))[0]!
  t.equal(rotated!.requestId, changed.requestId, 'same request as the cookie change')
  t.ok(rotated!.seq > changed.seq, 'reported right after the change')

  // Spring Session style: the old one deleted and a new one set in one response.
  await set('SESSION=s1; Path=/')
  await set(['SESSION=; Path=/; Max-Age=0', 'SESSION=s2; Path=/'])
  t.match((await eventsOf(proxy, 'session.rotated')).slice(1), [{ name: 'SESSION', from: hash('s1'), to: hash('s2') }], 'delete-then-set in one response is one rotation')

  await set('sid=1')
  await set('sid=2')
  t.match((await eventsOf(proxy, 'session.rotated')).map((e) => e.name), ['JSESSIONID', 'SESSION', 'sid'])
  await set('other=1')
  await set('other=2')
  t.equal((await eventsOf(proxy, 'session.rotated')).length, 3, 'other cookies do not rotate sessions')
})

t.test('since, limit and the bounded ring (events.maxPerProfile)', async (t) => {
  const { proxy, set } = await setup(t, { events: { maxPerProfile: 3 } })
  for (let i = 1; i <= 5; i++) await set(`k${i}=1`)
  const all = await listEvents(proxy)
  t.same(all.events.map((e) => e.seq), [3, 4, 5], 'only the newest 3 are kept')
  t.equal(all.firstSeq, 3)
  t.equal(all.lastSeq, 5)
  t.same((await listEvents(proxy, 'default', '?limit=2')).events.map((e) => e.seq), [4, 5], 'without since: the newest')
  t.same((await listEvents(proxy, 'default', '?since=3&limit=1')).events.map((e) => e.seq), [4], 'with since: the oldest after it')
  t.same((await listEvents(proxy, 'default', '?since=5')).events, [])
  const bad = await fetch(`${proxy.url}/_session/profiles/default/events?since=-1`)
  t.equal(bad.status, 400)
  t.same((await listEvents(proxy, 'nobody')).events, [], 'a profile without events yet has an empty log')
  t.equal((await fetch(`${proxy.url}/_session/profiles/-bad/events`)).status, 400)
})

t.test('live as Server-Sent Events, resumable with Last-Event-ID', async (t) => {
  const { proxy, set } = await setup(t)
  await set('before=1')
  const stream = await openEventStream(`${proxy.url}/_session/profiles/default/events`)
  t.teardown(() => stream.close())
  t.equal(stream.status, 200)
  t.match(stream.headers['content-type'], /^text\/event-stream/)
  await set('live=1')
  const ev = await stream.next((e) => e.type === 'cookie.set')
  t.match(ev, { type: 'cookie.set', cookie: { name: 'live' } }, 'events before connecting are not replayed without since')
  t.equal(stream.received[0]!.id, String(ev.seq), 'the SSE id is the seq')

  const resumed = await openEventStream(`${proxy.url}/_session/profiles/default/events`, { 'last-event-id': '0' })
  t.teardown(() => resumed.close())
  await resumed.next((e) => (e.cookie as { name: string } | undefined)?.name === 'live')
  t.same(resumed.received.map((r) => r.data.seq), [1, 2], 'Last-Event-ID: 0 replays the backlog in order')
  const since = await openEventStream(`${proxy.url}/_session/profiles/default/events?since=1`)
  t.teardown(() => since.close())
  await since.next((e) => e.seq === 2)
  t.same(since.received.map((r) => r.data.seq), [2])
})

t.test('events.persist keeps the log across restarts, seq continues', async (t) => {
  const up = await startUpstream(echoCookies())
  let proxy = await startProxy({ config: { events: { persist: true } } })
  const dataDir = proxy.dataDir
  t.teardown(async () => { await proxy.stop(); await up.close(); cleanup(dataDir) })
  await curl(['-x', proxy.url, `${up.origin}/?set=JSESSIONID%3D1`])
  await curl(['-x', proxy.url, `${up.origin}/?set=JSESSIONID%3D2`])
  const before = await listEvents(proxy)
  t.same(before.events.map((e) => e.type), ['cookie.set', 'cookie.changed', 'session.rotated'])
  t.equal(await proxy.stop(), 0)
  const file = join(dataDir, 'events', 'default.jsonl')
  t.ok(existsSync(file))
  t.equal(readFileSync(file, 'utf8').trim().split('\n').length, 3)
  proxy = await startProxy({ dataDir, config: { events: { persist: true } } })
  const after = await listEvents(proxy)
  t.same(after.events, before.events, 'the same events after a restart')
  await curl(['-x', proxy.url, `${up.origin}/?set=JSESSIONID%3D3`])
  const more = await listEvents(proxy, 'default', '?since=3')
  t.same(more.events.map((e: Ev) => [e.seq, e.type]), [[4, 'cookie.changed'], [5, 'session.rotated']])
})
