/**
 * Several proxy processes sharing their jars through a real redis-server:
 * a cookie set through one is sent by the other, concurrent Set-Cookie
 * through both keeps every update, Redis down keeps requests going (health
 * degraded, writes marked not persisted, caught up once it is back), and a
 * Redis restart loses nothing acknowledged, with or without its own
 * persistence.
 */
import t from 'tap'
import { adminGet, cleanup, echoCookies, startProxy, startUpstream, viaProxy, type ProxyProcess, type Upstream } from '../helpers/proxy.js'
import { hasRedis, startRedis, type RedisServer } from '../helpers/redis.js'

if (!hasRedis()) {
  t.fail('redis-server is not installed: .ci/run installs it (apt-get install redis-server)')
} else {
  let upstream: Upstream
  const started: ProxyProcess[] = []
  const servers: RedisServer[] = []
  t.before(async () => { upstream = await startUpstream(echoCookies()) })
  t.teardown(async () => {
    for (const p of started) await p.stop()
    for (const r of servers) await r.stop()
    await upstream?.close()
    cleanup(...started.map((p) => p.dataDir), ...servers.map((r) => r.dir))
  })

  const replica = async (redis: RedisServer, extra: Record<string, unknown> = {}): Promise<ProxyProcess> => {
    const p = await startProxy({ args: ['--store', redis.url], config: { redis: { commandTimeoutMs: 1000, ...extra } } })
    started.push(p)
    return p
  }
  const cookieSeen = async (p: ProxyProcess, path = '/echo'): Promise<string> => {
    const r = await viaProxy(p.port, `${upstream.origin}${path}`)
    return (JSON.parse(r.body) as { cookie: string | null }).cookie ?? ''
  }
  const set = async (p: ProxyProcess, cookie: string): Promise<{ status: number, persist: string | undefined }> => {
    const r = await viaProxy(p.port, `${upstream.origin}/set?set=${encodeURIComponent(cookie)}`)
    return { status: r.status, persist: r.headers['x-session-proxy-persist'] as string | undefined }
  }
  const waitFor = async (what: string, check: () => Promise<boolean>, ms = 5000): Promise<void> => {
    const deadline = Date.now() + ms
    while (Date.now() < deadline) {
      if (await check()) return
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    throw new Error(`timed out waiting for ${what}`)
  }

  t.test('a cookie set through one replica is sent by the other on its next request', async (t) => {
    const redis = await startRedis()
    servers.push(redis)
    const a = await replica(redis)
    const b = await replica(redis)
    t.equal((await set(a, 'sid=one; Path=/')).persist, undefined, 'acknowledged by Redis')
    t.equal(await cookieSeen(b), 'sid=one', 'B sends the cookie A stored')
    await set(b, 'sid=two; Path=/')
    t.equal(await cookieSeen(a), 'sid=two', 'and A the value B stored')
    await set(a, 'sid=; Path=/; Max-Age=0')
    t.equal(await cookieSeen(b), '', 'a deletion is shared too')
    // A third replica started later loads what Redis holds.
    await set(a, 'late=yes; Path=/')
    const c = await replica(redis)
    t.equal(await cookieSeen(c), 'late=yes')
    t.match(redis.cli('HLEN', 'session-proxy:jar:default').trim(), '1')
  })

  t.test('concurrent Set-Cookie through both replicas keeps every update', async (t) => {
    const redis = await startRedis()
    servers.push(redis)
    const a = await replica(redis)
    const b = await replica(redis)
    const n = 40
    const results = await Promise.all(Array.from({ length: n }, async (_, i) => await set(i % 2 === 0 ? a : b, `c${i}=v${i}; Path=/`)))
    t.ok(results.every((r) => r.status === 200 && r.persist === undefined), 'every response acknowledged')
    t.equal(Number(redis.cli('HLEN', 'session-proxy:jar:default').trim()), n, 'Redis holds every cookie')
    // The same cookie updated through both at once: one value wins everywhere.
    await Promise.all(Array.from({ length: 20 }, async (_, i) => await set(i % 2 === 0 ? a : b, `race=r${i}; Path=/`)))
    const count = (header: string): number => header === '' ? 0 : header.split('; ').length
    const sorted = (header: string): string => header.split('; ').sort().join('; ')
    let last = ''
    await waitFor('both replicas to converge', async () => {
      const [ca, cb] = [await cookieSeen(a), await cookieSeen(b)]
      last = `A: ${ca}\nB: ${cb}\nRedis: ${redis.cli('HGET', 'session-proxy:jar:default', '["127.0.0.1","/","race"]')}`
      // Cookies created in the same millisecond may come in either order (RFC 6265 orders by creation time only).
      return count(ca) === n + 1 && sorted(ca) === sorted(cb)
    }).catch((err: Error) => { throw new Error(`${err.message}\n${last}`) })
    const seen = await cookieSeen(a)
    for (let i = 0; i < n; i++) t.ok(seen.includes(`c${i}=v${i}`), `c${i} kept`)
    t.equal(sorted(await cookieSeen(b)), sorted(seen), 'both replicas send the same jar')
  })

  t.test('Redis down: requests go through with the last known cookies, health degraded, then caught up', async (t) => {
    const redis = await startRedis({ appendOnly: true })
    servers.push(redis)
    const a = await replica(redis)
    const b = await replica(redis)
    await set(a, 'before=1; Path=/')
    await redis.stop()
    t.equal(await cookieSeen(a), 'before=1', 'A still sends what it had')
    t.equal(await cookieSeen(b), 'before=1', 'B too')
    const during = await set(a, 'during=2; Path=/')
    t.equal(during.status, 200, 'the response is delivered')
    t.equal(during.persist, 'failed', 'marked as not persisted')
    await waitFor('health to say degraded', async () => ((await adminGet(a, '/_session/health')).json as { status: string }).status === 'degraded')
    t.match((await adminGet(a, '/_session/metrics')).body, /session_proxy_store_unreachable 1/, 'the store gauge says so')
    t.equal(await cookieSeen(a), 'before=1; during=2', 'A uses the new cookie at once')
    await redis.restart()
    await waitFor('A to catch up', async () => redis.cli('HGET', 'session-proxy:jar:default', '["127.0.0.1","/","during"]').includes('during'), 10_000)
    await waitFor('health to recover', async () => ((await adminGet(a, '/_session/health')).json as { status: string }).status === 'ok', 10_000)
    t.match((await adminGet(a, '/_session/metrics')).body, /session_proxy_store_unreachable 0/)
    await waitFor('B to get the cookie set during the outage', async () => (await cookieSeen(b)) === 'before=1; during=2', 10_000)
    t.pass('the queued write reached Redis and the other replica')
  })

  t.test('a Redis restart loses nothing acknowledged (append-only file)', async (t) => {
    const redis = await startRedis({ appendOnly: true })
    servers.push(redis)
    const a = await replica(redis)
    const b = await replica(redis)
    const acked: string[] = []
    let stop = false
    const writer = (async () => {
      for (let i = 0; !stop; i++) {
        const r = await set(i % 2 === 0 ? a : b, `k${i}=v${i}; Path=/`)
        if (r.status === 200 && r.persist === undefined) acked.push(`k${i}`)
        await new Promise((resolve) => setTimeout(resolve, 5))
      }
    })()
    await new Promise((resolve) => setTimeout(resolve, 300))
    const beforeRestart = acked.length
    await redis.restart()
    await waitFor('writes acknowledged again', async () => acked.length >= beforeRestart + 10, 10_000)
    stop = true
    await writer
    t.ok(acked.length > 10, `${acked.length} acknowledged writes`)
    await waitFor('every acknowledged cookie in Redis', async () => {
      const fields = redis.cli('HKEYS', 'session-proxy:jar:default')
      return acked.every((k) => fields.includes(`"${k}"`))
    }, 10_000)
    const seen = await cookieSeen(b)
    t.ok(acked.every((k) => seen.includes(`${k}=`)), 'and sent by a replica')
  })

  t.test('a Redis restart without persistence: the replicas push back what they hold', async (t) => {
    const redis = await startRedis()
    servers.push(redis)
    const a = await replica(redis)
    const b = await replica(redis)
    await set(a, 'x=1; Path=/')
    await set(b, 'y=2; Path=/')
    await redis.restart()
    await waitFor('the jar to be pushed back', async () => Number(redis.cli('HLEN', 'session-proxy:jar:default').trim()) === 2, 10_000)
    // Nothing wrote since the restart: the two cookies are back because the replicas pushed them.
    const c = await replica(redis)
    t.equal(await cookieSeen(c), 'x=1; y=2', 'a new replica gets the whole jar')
  })
}
