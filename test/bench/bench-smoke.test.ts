// Smoke test of the benchmark harness: runs `node bench/run.mjs` in its quick
// mode (BENCH_SMOKE=1: 1 s per wrk run, no warm-up, 200 profiles, no peers)
// against the built proxy (dist/cli.js) and checks that the JSON it writes
// has every session-proxy scenario with a positive request rate. No timing
// thresholds: this guards the harness, not the numbers.
import t from 'tap'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const runner = path.join(root, 'bench', 'run.mjs')

function findOnPath (cmd: string): string | null {
  const dirs = [...(process.env.PATH ?? '').split(path.delimiter), '/usr/local/sbin', '/usr/sbin', '/sbin']
  for (const d of dirs) {
    if (d === '') continue
    const p = path.join(d, cmd)
    try {
      fs.accessSync(p, fs.constants.X_OK)
      if (fs.statSync(p).isFile()) return p
    } catch {}
  }
  return null
}

interface Run { rps: number, cpu_us_per_req: number | null, p50_ms: number, p99_ms: number, non2xx: number, errors: number }
interface Scenario { name: string, status: string, error?: string, runs?: Record<string, Run> }
interface Results {
  smoke: boolean
  config: { profiles: number }
  machine: { cpu_model: string | null, nproc: number, total_mem_mb: number, node: string }
  startup: { median_ms?: number, error?: string } | null
  seeding: { ok: number, profiles: number } | null
  scenarios: Scenario[]
  checks: Array<{ name: string, ok: boolean, detail: string }>
  targets: Array<{ id: string }>
}

const wrk = findOnPath('wrk')

t.test('bench/run.mjs smoke run', {
  timeout: 120_000,
  skip: wrk === null && process.env.CI === undefined ? 'wrk is not installed (apt-get install -y wrk): benchmark smoke test not run' : false
}, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'session-proxy-bench-test-'))
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }))
  const out = path.join(dir, 'results.json')

  const env: NodeJS.ProcessEnv = {
    ...process.env,
    BENCH_SMOKE: '1',
    BENCH_OUT: out,
    // keep tap's coverage collection out of the harness and the proxy it runs
    _TAPJS_PROCESSINFO_COVERAGE_: '0'
  }
  const child = spawn(process.execPath, [runner], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (c: string) => { stdout += c })
  child.stderr.setEncoding('utf8').on('data', (c: string) => { stderr += c })
  // on a timeout or failure, SIGTERM lets the harness kill its own children
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM') })
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)))

  t.equal(code, 0, 'bench/run.mjs exits 0', { stdout, stderr })
  t.ok(fs.existsSync(out), 'results JSON written to BENCH_OUT')
  if (!fs.existsSync(out)) return
  const res = JSON.parse(fs.readFileSync(out, 'utf8')) as Results

  t.equal(res.smoke, true, 'smoke mode recorded')
  t.equal(res.config.profiles, 200, 'smoke mode seeds 200 profiles')
  t.type(res.machine.nproc, 'number')
  t.type(res.machine.node, 'string')

  for (const name of ['direct', 'bare', 'session-proxy-defaults', 'session-proxy-fixed', 'session-proxy-rotate', 'session-proxy-profiles']) {
    const s = res.scenarios.find((x) => x.name === name)
    t.ok(s, `scenario ${name} present`)
    if (s === undefined) continue
    t.equal(s.status, 'ok', `scenario ${name} ran`, { error: s.error })
    for (const c of ['c32', 'c1']) {
      const r = s.runs?.[c]
      t.type(r?.rps, 'number', `${name} ${c}: req/s is a number`)
      t.ok((r?.rps ?? 0) > 0, `${name} ${c}: req/s > 0`, { run: r })
      t.type(r?.p50_ms, 'number', `${name} ${c}: p50 is a number`)
      t.type(r?.p99_ms, 'number', `${name} ${c}: p99 is a number`)
      t.type(r?.cpu_us_per_req, 'number', `${name} ${c}: CPU per request read from /proc`)
    }
  }
  t.notOk(res.scenarios.some((s) => ['squid', 'tinyproxy', 'mitmproxy'].includes(s.name)), 'smoke mode runs no peers')

  t.type(res.startup?.median_ms, 'number', 'start-up time measured', { startup: res.startup })
  t.equal(res.seeding?.ok, 200, 'all 200 profiles seeded through the proxy', { seeding: res.seeding })
  // the harness's own sanity checks: the scenarios measure what they claim
  // (cookie captured and injected, rotation tracked, profiles isolated)
  t.same(res.checks.filter((c) => !c.ok), [], 'harness sanity checks pass')
  t.ok(res.targets.length > 0, 'targets evaluated')
})
