/**
 * RedisJarStore against a real redis-server, two registries standing for
 * two proxy processes: changes reach the other's jar through pub/sub, writes
 * are per cookie (concurrent writers keep both), a write while Redis is down
 * settles as failed, stays queued within redis.maxQueuedWrites and reaches
 * Redis once it is back; the login lock lets one run and the others join,
 * and an abandoned lock expires.
 */
import pino from 'pino'
import t, { type Test } from 'tap'
import { loadConfig } from '../../../src/config/load.js'
import { ProfileRegistry, type Profile } from '../../../src/session/profiles.js'
import { RedisJarStore, redactUrl } from '../../../src/session/store/redis-store.js'
import { cleanup, tempDir } from '../../helpers/proxy.js'
import { hasRedis, startRedis, type RedisServer } from '../../helpers/redis.js'

const URL_A = 'http://example.test/'

async function replica (t: Test, redis: RedisServer, redisConfig: Record<string, unknown> = {}): Promise<{ registry: ProfileRegistry, store: RedisJarStore }> {
  const dataDir = tempDir('sp-redis-unit-')
  const { config } = loadConfig({ env: {}, flags: { dataDir, store: redis.url, redis: { commandTimeoutMs: 500, ...redisConfig } } })
  const log = pino({ level: 'silent' })
  const store = new RedisJarStore(redis.url, config.redis, log)
  const registry = new ProfileRegistry(config, store, log)
  await registry.start()
  t.teardown(async () => { await registry.close(); cleanup(dataDir) })
  return { registry, store }
}

async function until (what: string, check: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

const header = (p: Profile): string => p.jar.cookieHeader(URL_A, URL_A)

if (!hasRedis()) {
  t.fail('redis-server is not installed: .ci/run installs it (apt-get install redis-server)')
} else {
  let redis: RedisServer
  t.before(async () => { redis = await startRedis() })
  t.teardown(async () => { await redis.stop(); cleanup(redis.dir) })
  t.beforeEach(() => { redis.cli('FLUSHALL') })

  t.test('a change reaches the other process; both writers keep their cookies', async (t) => {
    const a = await replica(t, redis)
    const b = await replica(t, redis)
    const pa = a.registry.get('p1')
    const pb = b.registry.get('p1')
    pa.capture(['x=1; Path=/'], URL_A, 1)
    pb.capture(['y=2; Path=/'], URL_A, 2)
    await Promise.all([pa.pendingWrite, pb.pendingWrite])
    t.equal(pa.persistError, null)
    t.equal(pb.persistError, null)
    await until('both jars to hold both cookies', () => header(pa) === 'x=1; y=2' && header(pb) === 'x=1; y=2')
    t.equal(redis.cli('HLEN', 'session-proxy:jar:p1').trim(), '2')
    t.same(b.registry.names(), ['p1'], 'the profile is listed everywhere')
    // A profile not loaded in B is read from B's copy of Redis on first use.
    const p2 = a.registry.get('p2')
    p2.capture(['z=3; Path=/'], URL_A, 3)
    await p2.pendingWrite
    await until('B to know p2', () => b.store.exists('p2'))
    t.equal(header(b.registry.get('p2')), 'z=3')
  })

  t.test('Redis down: the write settles as failed, is queued (bounded) and reaches Redis once it is back', async (t) => {
    const a = await replica(t, redis, { maxQueuedWrites: 3 })
    const p = a.registry.get('q')
    p.capture(['keep=1; Path=/'], URL_A, 1)
    await p.pendingWrite
    await redis.stop()
    await until('the store to notice', () => a.registry.problems.some((x) => 'kind' in x && x.kind === 'store'))
    for (let i = 0; i < 6; i++) p.capture([`c${i}=${i}; Path=/`], URL_A, 10 + i)
    await p.pendingWrite
    t.ok(p.persistError, 'not acknowledged')
    t.ok(a.store.queued <= 3, `at most maxQueuedWrites identities held (${a.store.queued})`)
    t.ok(a.registry.problems.some((x) => 'kind' in x && x.kind === 'persist'), 'health names the profile')
    t.equal(header(p), 'keep=1; c0=0; c1=1; c2=2; c3=3; c4=4; c5=5', 'the jar has every change meanwhile')
    await redis.restart()
    await until('every cookie in Redis', () => redis.cli('HLEN', 'session-proxy:jar:q').trim() === '7', 10_000)
    await until('health to recover', () => a.registry.problems.length === 0, 10_000)
    t.equal(p.persistError, null)
    t.equal(a.store.queued, 0)
  })

  t.test('the login lock: one runs, the others join; an abandoned lock expires', async (t) => {
    const a = await replica(t, redis, { loginLockTtlMs: 300, loginWaitMs: 5000 })
    const b = await replica(t, redis, { loginLockTtlMs: 300, loginWaitMs: 5000 })
    let runs = 0
    const login = async (): Promise<string> => {
      runs++
      await new Promise((resolve) => setTimeout(resolve, 700))
      return 'done'
    }
    const [ra, rb] = await Promise.all([a.store.loginLock.exclusive('p', 'o', login), b.store.loginLock.exclusive('p', 'o', login)])
    t.equal(runs, 1, 'one run, although it outlived the lock TTL (renewed)')
    t.same([ra.ran, rb.ran].sort(), [false, true])
    t.equal(redis.cli('EXISTS', 'session-proxy:lock:p:o').trim(), '0', 'released')
    // A holder that vanished: its lock expires and the waiter runs.
    redis.cli('SET', 'session-proxy:lock:p:o', 'dead-holder', 'PX', '300')
    const began = Date.now()
    const rc = await a.store.loginLock.exclusive('p', 'o', async () => 'mine')
    t.same(rc, { ran: true, value: 'mine' })
    t.ok(Date.now() - began >= 200, 'after the expiry')
    // A waiter that waits too long gives up with a clear error.
    redis.cli('SET', 'session-proxy:lock:p:o', 'slow-holder', 'PX', '60000')
    const c = await replica(t, redis, { loginWaitMs: 200 })
    await t.rejects(c.store.loginLock.exclusive('p', 'o', async () => 'never'), /did not finish within redis.loginWaitMs/)
  })

  t.test('start-up without Redis is refused, naming the store without its password', async (t) => {
    const { config } = loadConfig({ env: {}, flags: { dataDir: tempDir('sp-redis-none-'), redis: { connectTimeoutMs: 300 } } })
    const store = new RedisJarStore('redis://:secret@127.0.0.1:1/0', config.redis, pino({ level: 'silent' }))
    await t.rejects(store.start(), /cannot use store redis:\/\/:\*\*\*@127\.0\.0\.1:1\/0/)
    t.equal(redactUrl('redis://u:pw@h:1/2'), 'redis://u:***@h:1/2')
  })
}

if (hasRedis()) {
  t.test('changes are ordered by version: a stale message is ignored, a newer one applied', async (t) => {
    const redis = await startRedis()
    t.teardown(async () => { await redis.stop(); cleanup(redis.dir) })
    const a = await replica(t, redis)
    const p = a.registry.get('v')
    p.capture(['s=mine; Path=/'], URL_A, 1)
    await p.pendingWrite
    const version = Number(redis.cli('GET', 'session-proxy:version:v').trim())
    t.ok(version >= 1, `the write was version ${version}`)
    const field = JSON.stringify(['example.test', '/', 's'])
    const cookieJson = (value: string): string => JSON.stringify({ key: 's', value, domain: 'example.test', path: '/', hostOnly: true, creation: new Date().toISOString() })
    const message = (v: number, value: string): string => `${v}|${JSON.stringify({ r: 'someone-else', p: 'v', c: 0, s: { [field]: cookieJson(value) }, d: [] })}`
    redis.cli('PUBLISH', 'session-proxy:changes', message(version, 'stale'))
    redis.cli('PUBLISH', 'session-proxy:changes', message(version + 5, 'newer'))
    await until('the newer value', () => header(p) === 's=newer')
    redis.cli('PUBLISH', 'session-proxy:changes', message(version + 1, 'older-than-newer'))
    await new Promise((resolve) => setTimeout(resolve, 200))
    t.equal(header(p), 's=newer', 'a message older than what is known changes nothing')
  })
}
