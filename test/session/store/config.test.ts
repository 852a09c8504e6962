/** The store's keys: `store` (flag, env, file), `redis.*` defaults, and a clear error for a bad URL. */
import t from 'tap'
import { loadConfig } from '../../../src/config/load.js'

t.test('store and redis.* keys', async (t) => {
  const { config } = loadConfig({ env: {} })
  t.equal(config.store, null, 'files by default')
  t.same(config.redis, { maxQueuedWrites: 100000, commandTimeoutMs: 2000, connectTimeoutMs: 10000, loginLockTtlMs: 30000, loginWaitMs: 60000, keyPrefix: 'session-proxy:' })
  t.equal(loadConfig({ env: { SESSION_PROXY_STORE: 'redis://r:6379/2' } }).config.store, 'redis://r:6379/2')
  t.equal(loadConfig({ env: { SESSION_PROXY_REDIS_LOGIN_LOCK_TTL_MS: '5000' } }).config.redis.loginLockTtlMs, 5000)
  t.equal(loadConfig({ env: {}, flags: { store: 'rediss://h:1/0' } }).config.store, 'rediss://h:1/0')
  t.throws(() => loadConfig({ env: {}, flags: { store: 'mysql://x' } }), /store: has the wrong form \(expected redis:\/\/host:port\/db/)
  t.throws(() => loadConfig({ env: { SESSION_PROXY_REDIS_LOGIN_LOCK_TTL_MS: '5' } }), /redis\.loginLockTtlMs/)
})
