// Smoke test of the virtual-users bench scenario (issue 13): runs
// `node bench/lib/vusers.mjs` with a few users for one second (BENCH_SMOKE:
// no warm-up) against the built proxy and checks what it reports: every
// user logged in exactly once before the measurement, none while measuring,
// every answer 2xx. No timing thresholds: this guards the scenario and its
// report, not the numbers (`BENCH_VUSERS=1000 npm run bench` measures).
import t from 'tap'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const wrk = ['/usr/bin/wrk', '/usr/local/bin/wrk'].find((p) => fs.existsSync(p))

interface VusersResult {
  status: string
  error?: string
  users: number
  rps: number
  non2xx: number
  users_logged_in: number
  logins: number
  logins_during_measurement: number
  relogins: number
  first_requests: Record<string, number>
}

t.test('bench/lib/vusers.mjs: 40 logged-in virtual users', {
  timeout: 90_000,
  skip: wrk === undefined && process.env.CI === undefined ? 'wrk is not installed (apt-get install -y wrk)' : false
}, async (t) => {
  const users = 40
  const child = spawn(process.execPath, [path.join(root, 'bench', 'lib', 'vusers.mjs'), String(users), '1'], {
    cwd: root,
    env: { ...process.env, BENCH_SMOKE: '1', _TAPJS_PROCESSINFO_COVERAGE_: '0' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (c: Buffer) => { stdout += c.toString() })
  child.stderr.on('data', (c: Buffer) => { stderr += c.toString() })
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  let r: VusersResult
  try {
    r = JSON.parse(stdout) as VusersResult
  } catch {
    t.fail(`no JSON report (exit ${String(code)}):\n${stdout}\n${stderr.slice(-2000)}`)
    return
  }
  t.equal(r.status, 'ok', r.error ?? stderr.slice(-1000))
  t.same(r.first_requests, { 200: users }, 'the first request of every user was logged in and answered 200')
  t.equal(r.users_logged_in, users, 'every user shows a login in the metrics')
  t.equal(r.logins, users, 'exactly one login per user')
  t.equal(r.logins_during_measurement, 0, 'none while wrk was measuring')
  t.equal(r.relogins, 0)
  t.equal(r.non2xx, 0)
  t.ok(r.rps > 0, `${r.rps} req/s`)
  t.equal(code, 0, 'the script exits 0 when the run is clean')
})
