/**
 * The README's ab recipe for virtual users (issue 13): one `ab -X proxy -P
 * "vu-N:"` run per user, all at once, through a `vu-*` profile pattern with a
 * credentials CSV, against the Spring fake's form login. Every request is
 * answered 200 as its own user, and each user logs in exactly once.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { adminGet, cleanup, run, startProxy, tempDir } from '../helpers/proxy.js'
import { startSpringLike } from '../helpers/spring-like.js'

const N = 8
const PER_USER = 20

// Under CI (.ci/run installs apache2-utils) a missing ab fails the test instead of skipping it.
t.test('ab, one run per virtual user: every answer 200 as its own user, one login each', { skip: (await run('sh', ['-c', 'command -v ab'])).code === 0 || process.env.CI === 'true' ? false : 'ab (apache2-utils) is not installed' }, async (t) => {
  const users = Object.fromEntries(Array.from({ length: N }, (_, k) => [`user${k + 1}`, `pw-${k + 1},"x"`]))
  const app = await startSpringLike({ users })
  const dir = tempDir('sp-vusers-ab-')
  const csv = join(dir, 'users.csv')
  writeFileSync(csv, 'profile,username,password\n' + Object.entries(users).map(([u, p], k) => `vu-${k + 1},${u},"${p.replace(/"/g, '""')}"`).join('\n') + '\n')
  const proxy = await startProxy({
    config: { profiles: { 'vu-*': { credentials: { file: csv }, autopilot: [{ match: `127.0.0.1:${app.port}`, login: { preset: 'spring-form' }, csrf: [{ preset: 'spring' }] }] } } }
  })
  t.teardown(async () => { await proxy.stop(); await app.close(); cleanup(proxy.dataDir, dir) })

  const runs = await Promise.all(Array.from({ length: N }, async (_, k) =>
    await run('ab', ['-q', '-n', String(PER_USER), '-c', '2', '-X', `127.0.0.1:${proxy.port}`, '-P', `vu-${k + 1}:`, `${app.origin}/api/me`], { timeoutMs: 60_000 })))
  runs.forEach((r, k) => {
    const out = r.stdout.toString('utf8')
    t.equal(r.code, 0, `ab for vu-${k + 1} exits 0: ${r.stderr}`)
    t.match(out, new RegExp(`Complete requests:\\s+${PER_USER}\\b`), `vu-${k + 1}: ${PER_USER} requests`)
    t.notMatch(out, /Non-2xx responses/, `vu-${k + 1}: every answer 2xx`)
  })

  const answered = app.log.filter((r) => r.path === '/api/me' && r.status === 200)
  for (const u of Object.keys(users)) t.equal(answered.filter((r) => r.user === u).length, PER_USER, `${u} answered each of its ${PER_USER} requests`)
  const logins = app.log.filter((r) => r.outcome === 'login-ok')
  t.same(logins.map((r) => r.user).sort(), Object.keys(users).sort(), 'exactly one form login per user')
  const metrics = (await adminGet(proxy, '/_session/metrics')).body
  for (let k = 1; k <= N; k++) t.match(metrics, new RegExp(`^session_proxy_logins_total\\{profile="vu-${k}",outcome="succeeded"\\} 1$`, 'm'), `vu-${k}: one login in the metrics`)
})
