#!/usr/bin/env node
// session-proxy benchmark harness.
//
//   npm run bench                      # build, then a full run (~15 min with defaults)
//   BENCH_SMOKE=1 node bench/run.mjs   # quick CI smoke run (~20 s)
//
// Every subject (the bare upstream, a bare Node forward proxy, session-proxy
// at its defaults and with --log-level warn, the rotating-cookie and
// many-profile scenarios, squid, tinyproxy, mitmproxy stickycookie) is
// started once; then the rounds run interleaved, each round measuring every
// subject in turn (in a rotated order), and the report gives medians of the
// rounds, as the machine is noisy. CPU per request is each subject's own
// user+sys time from /proc. Plain Node ESM; modules in bench/lib/, the
// upstream in bench/upstream/, the wrk script in bench/wrk/, the floor in
// bench/reference/. See bench/README.md for the environment variables.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { cleanup, describeChild, makeTempDir, stopChild } from './lib/children.mjs'
import { log } from './lib/log.mjs'
import { dirBytes, resetPeakRss, treeMemory } from './lib/proc.mjs'
import { evaluate, printReport, printTable, summarize } from './lib/report.mjs'
import { seedProfiles } from './lib/seed.mjs'
import * as S from './lib/settings.mjs'
import { measureStartup, startBare, startPeer, startSessionProxy, stopSessionProxy } from './lib/subjects.mjs'
import { startUpstream } from './lib/upstream.mjs'
import { httpGet, median, round, sleep, versionOf, which } from './lib/util.mjs'
import { findWrk, runWrk } from './lib/wrk.mjs'

const checks = []
function check (name, ok, detail) {
  checks.push({ name, ok, detail })
  if (!ok) log(`WARNING: check failed: ${name}: ${detail}`)
}

async function echoCookies (proxyPort, upPort, headers = {}) {
  const r = await httpGet({ proxyPort, upPort, urlPath: '/echo', headers })
  return r.body.trim()
}

function machine () {
  return {
    cpu_model: os.cpus()[0]?.model ?? null,
    nproc: typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length,
    total_mem_mb: Math.round(os.totalmem() / 1024 / 1024),
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    hostname: os.hostname(),
    loadavg_at_start: os.loadavg().map((x) => round(x, 2)),
    node: process.version
  }
}

function versions (bins) {
  const pkg = JSON.parse(fs.readFileSync(path.join(S.ROOT, 'package.json'), 'utf8'))
  const git = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: S.ROOT, encoding: 'utf8' })
  const dirty = spawnSync('git', ['status', '--porcelain', '--', 'src'], { cwd: S.ROOT, encoding: 'utf8' })
  return {
    node: process.version,
    session_proxy: `${pkg.version}${git.status === 0 ? ` (${git.stdout.trim()}${dirty.stdout?.trim() ? ', src modified' : ''})` : ''}`,
    wrk: versionOf(bins.wrk, ['-v']),
    nginx: versionOf(bins.nginx, ['-v']),
    squid: versionOf(bins.squid, ['-v']),
    tinyproxy: versionOf(bins.tinyproxy, ['-v']),
    mitmproxy: versionOf(bins.mitmdump, ['--version'])
  }
}

/** The session-proxy scenarios: one process (and data dir) each. */
const SP_SCENARIOS = [
  { name: 'session-proxy-defaults', label: 'fixed cookie on /, the proxy at its defaults (info access log)', urlPath: '/', logLevel: null },
  { name: 'session-proxy-fixed', label: 'fixed cookie on /, --log-level warn', urlPath: '/' },
  { name: 'session-proxy-rotate', label: 'cookie changes on every response (/rotate): jar update + persistence before delivery', urlPath: '/rotate' },
  { name: 'session-proxy-profiles', label: `${S.PROFILES} profiles x ${S.COOKIES_PER_PROFILE} cookies; wrk cycles X-Session-Profile over them`, urlPath: '/', profiles: S.PROFILES, seed: { path: '/seed', cookies: S.COOKIES_PER_PROFILE, result: 'seeding' } },
  ...(S.BIG_PROFILES > 0
    ? [{ name: 'session-proxy-100k', label: `${S.BIG_PROFILES} profiles x ${S.COOKIES_PER_BIG_PROFILE} cookies (c32 only)`, urlPath: '/', profiles: S.BIG_PROFILES, prefix: 'b', conns: ['c32'], seed: { path: '/seed-small', cookies: S.COOKIES_PER_BIG_PROFILE, result: 'big_seeding' } }]
    : [])
]

async function verifySessionProxy (def, proxyPort, up, sp, result) {
  const first = await httpGet({ proxyPort, upPort: up.port, urlPath: def.urlPath })
  if (first.status !== 200) throw new Error(`verification request through session-proxy returned HTTP ${first.status}`)
  if (def.seed === undefined) {
    if (def.urlPath === '/rotate') {
      const second = await httpGet({ proxyPort, upPort: up.port, urlPath: '/rotate' })
      const m = /rot=([^;]+)/.exec([second.headers['set-cookie'] ?? []].flat().join(' '))
      const echo = await echoCookies(proxyPort, up.port)
      check('rotate: latest rotating cookie is injected', !!m && echo.includes(`rot=${m[1]}`), `last Set-Cookie rot=${m?.[1]}, Cookie sent upstream: ${JSON.stringify(echo)}`)
    } else {
      const echo = await echoCookies(proxyPort, up.port)
      check(`${def.name}: captured sid cookie is injected`, /(^|;\s*)sid=abc(;|$)/.test(echo), `Cookie sent upstream: ${JSON.stringify(echo)}`)
    }
    return
  }
  const prefix = def.prefix ?? 'p'
  log(`  seeding ${def.profiles} profiles x ${def.seed.cookies} cookies through the proxy`)
  const seeding = await seedProfiles({ proxyPort, upPort: up.port, n: def.profiles, prefix, seedPath: def.seed.path, cookies: def.seed.cookies })
  await sleep(S.SMOKE ? 200 : 1000) // let write-behind persistence settle before sampling memory
  seeding.rss_after = treeMemory(sp.rec.pid)
  seeding.data_dir = dirBytes(sp.dataDir)
  result[def.seed.result] = seeding
  log(`  seeded ${seeding.ok}/${def.profiles} in ${seeding.duration_ms} ms (${seeding.failed} failed); RSS ${seeding.rss_after?.rss_mb} MB`)
  if (seeding.ok === 0) throw new Error(`seeding failed: ${seeding.first_error}`)
  if (seeding.failed > 0) result.errors.push(`${def.name} seeding: ${seeding.failed} of ${def.profiles} requests failed (first: ${seeding.first_error})`)
  for (const i of [0, def.profiles - 1]) {
    const echo = await echoCookies(proxyPort, up.port, { 'x-session-profile': `${prefix}${i}` })
    const n = (echo.match(/(^|;\s*)s\d+=/g) ?? []).length
    check(`${def.name}: ${prefix}${i} has ${def.seed.cookies} seeded cookies`, n === def.seed.cookies, `found ${n}: ${JSON.stringify(echo.slice(0, 200))}`)
  }
  const other = await echoCookies(proxyPort, up.port, { 'x-session-profile': 'bench-unseeded' })
  check(`${def.name}: an unseeded profile gets no seeded cookies`, !/(^|;\s*)s\d+=/.test(other), `Cookie sent upstream: ${JSON.stringify(other.slice(0, 200))}`)
}

async function main () {
  const startedAt = new Date()
  const bins = { nginx: which('nginx'), wrk: findWrk(), squid: which('squid'), tinyproxy: which('tinyproxy'), mitmdump: which('mitmdump') }
  if (!bins.wrk) throw new Error('wrk is not installed (apt-get install -y wrk)')
  if (!fs.existsSync(S.PROXY_BIN)) throw new Error(`${S.PROXY_BIN} does not exist: run npm run build first (npm run bench does)`)
  const tmpRoot = makeTempDir('run')
  const result = {
    schema: 2,
    generated_at: startedAt.toISOString(),
    smoke: S.SMOKE,
    config: {
      duration_s: S.DURATION_S,
      warmup_s: S.WARMUP_S,
      rounds: S.ROUNDS,
      connections: S.CONNS,
      profiles: S.PROFILES,
      big_profiles: S.BIG_PROFILES,
      cookies_per_profile: S.COOKIES_PER_PROFILE,
      startup_runs: S.STARTUP_RUNS,
      peers_requested: S.PEERS,
      proxy_bin: path.relative(S.ROOT, S.PROXY_BIN),
      proxy_config: S.PROXY_CONFIG ?? null
    },
    machine: machine(),
    versions: versions(bins),
    upstream: null,
    startup: null,
    seeding: null,
    scenarios: [],
    ratios: {},
    targets: [],
    checks,
    errors: []
  }
  const { errors, scenarios } = result
  log(`${S.SMOKE ? 'SMOKE run' : 'full run'}: ${S.ROUNDS} interleaved round(s), ${S.DURATION_S}s per wrk run (+${S.WARMUP_S}s warm-up), peers: ${S.PEERS.join(', ') || 'none'}`)
  log(`machine: ${result.machine.cpu_model}, ${result.machine.nproc} cpus, ${result.machine.total_mem_mb} MB, node ${process.version}`)

  const up = await startUpstream()
  result.upstream = { kind: up.kind, version: up.kind === 'nginx' ? result.versions.nginx : process.version }

  // start-up first, while nothing else runs
  {
    log(`session-proxy start-up time (${S.STARTUP_RUNS} run${S.STARTUP_RUNS > 1 ? 's' : ''})`)
    const runs = []
    try {
      for (let i = 0; i < S.STARTUP_RUNS; i++) {
        const r = await measureStartup(up, tmpRoot)
        if (!r.stop.clean) check('start-up: SIGTERM stops the proxy cleanly', false, JSON.stringify(r.stop))
        runs.push(r)
      }
      const firsts = runs.map((r) => r.first_response_ms)
      result.startup = { runs, median_ms: round(median(firsts), 1), min_ms: round(Math.min(...firsts), 1), max_ms: round(Math.max(...firsts), 1) }
    } catch (e) {
      result.startup = { runs, error: e.message }
      errors.push(`startup: ${e.message}`)
    }
  }

  // every subject, started once and kept for all rounds
  const subjects = []
  const add = (name, label, target, extra = {}) => {
    const { conns: keys, ...rest } = extra
    const s = { name, label, status: 'ok', rounds: {}, conns: S.CONNS.filter((c) => keys === undefined || keys.includes(c.key)), target, ...rest }
    scenarios.push(s)
    subjects.push(s)
    return s
  }
  const fail = (s, e, rec) => {
    s.status = 'error'
    s.error = `${e.message}${rec ? `\n  ${describeChild(rec)}` : ''}`
    errors.push(`${s.name}: ${e.message}`)
    log(`  ERROR: ${s.name}: ${e.message}`)
  }
  add('direct', `wrk -> ${up.kind} upstream (no proxy)`, { port: up.port, upPort: up.port, urlPath: '/', viaProxy: false, pid: up.rec.pid })
  const stops = []
  try {
    const bare = await startBare()
    stops.push(() => stopChild(bare.rec))
    add('bare', 'bare Node forward proxy (node:http + undici dispatch, no jar, no log): the floor', { port: bare.port, upPort: up.port, urlPath: '/', viaProxy: true, pid: bare.rec.pid })
  } catch (e) {
    errors.push(`bare: ${e.message}`)
  }
  for (const def of SP_SCENARIOS) {
    log(`starting ${def.name}`)
    const s = add(def.name, def.label, null, { path: def.urlPath, profiles: def.profiles ?? 1, conns: def.conns })
    let sp
    try {
      sp = await startSessionProxy(tmpRoot, def.logLevel === null ? { logLevel: null } : {})
      stops.push(async () => {
        s.data_dir = dirBytes(sp.dataDir)
        s.stop = await stopSessionProxy(sp)
        if (!s.stop.clean) check(`${def.name}: SIGTERM stops the proxy cleanly`, false, JSON.stringify(s.stop))
      })
      s.pid = sp.rec.pid
      await verifySessionProxy(def, sp.port, up, sp, result)
      s.target = { port: sp.port, upPort: up.port, urlPath: def.urlPath, viaProxy: true, profiles: def.profiles ?? 0, prefix: def.prefix, pid: sp.rec.pid }
    } catch (e) {
      fail(s, e, sp?.rec)
    }
  }
  for (const name of S.ALL_PEERS) {
    if (!S.PEERS.includes(name)) continue
    log(`starting ${name}`)
    const peer = await startPeer(name, up)
    const label = `${name} forwarding / (${name === 'mitmproxy' ? 'stickycookie=.' : name === 'squid' ? 'no cache, access log off' : 'defaults'})`
    if (peer.skipped) {
      scenarios.push({ name, label, status: 'skipped', reason: peer.skipped })
      log(`  skipped: ${peer.skipped.split('\n')[0]}`)
      continue
    }
    stops.push(() => stopChild(peer.rec, { timeoutMs: 5000 }))
    add(name, label, { port: peer.port, upPort: up.port, urlPath: '/', viaProxy: true, pid: peer.rec.pid })
  }

  try {
    for (const s of subjects) if (s.status === 'ok' && s.target.pid) s.peak_reset = resetPeakRss(s.target.pid)
    for (let round = 0; round < S.ROUNDS; round++) {
      const live = subjects.filter((s) => s.status === 'ok')
      const order = live.map((_, i) => live[(i + round) % live.length])
      log(`round ${round + 1}/${S.ROUNDS}: ${order.map((s) => s.name).join(', ')}`)
      for (const s of order) {
        for (const c of s.conns) {
          try {
            const run = await runWrk(s.target, c)
            ;(s.rounds[c.key] ??= []).push(run)
            log(`  ${s.name} c${c.connections}: ${run.rps} req/s, ${run.cpu_us_per_req ?? '-'} us CPU/req`)
          } catch (e) {
            fail(s, e)
            break
          }
        }
      }
    }
    for (const s of subjects) {
      if (s.status !== 'ok') continue
      summarize(s)
      s.rss = s.target.pid ? treeMemory(s.target.pid) : null
      delete s.target
    }
  } finally {
    for (const stop of stops.reverse()) await stop()
    await stopChild(up.rec)
  }
  for (const s of subjects) { delete s.target; delete s.conns }

  if (/^\d+$/.test(process.env.BENCH_VUSERS ?? '')) { // N logged-in virtual users (bench/lib/vusers.mjs)
    result.vusers = await (await import('./lib/vusers.mjs')).runVusers({ count: Number(process.env.BENCH_VUSERS), tmpRoot, durationS: S.DURATION_S })
    if (result.vusers.status === 'error') errors.push(`vusers: ${result.vusers.error}`)
  }
  evaluate(result, { profiles: S.PROFILES, bigProfiles: S.BIG_PROFILES })
  result.finished_at = new Date().toISOString()
  result.machine.loadavg_at_end = os.loadavg().map((x) => round(x, 2))

  console.log('')
  console.log(`session-proxy benchmark${S.SMOKE ? ' (SMOKE)' : ''}: ${result.machine.cpu_model}, ${result.machine.nproc} cpus, ${result.machine.total_mem_mb} MB, node ${process.version}, upstream ${up.kind}`)
  console.log(`medians of ${S.ROUNDS} interleaved round(s); wrk ${S.DURATION_S}s per run (+${S.WARMUP_S}s warm-up); c32 = -t2 -c32, c1 = -t1 -c1; CPU = the subject's own user+sys time per request`)
  const load1 = result.machine.loadavg_at_start[0]
  if (load1 > result.machine.nproc / 2) console.log(`NOTE: 1-min load average was ${load1} at start (${result.machine.nproc} cpus): other work was running, numbers are noisy`)
  console.log('')
  printTable(scenarios)
  for (const s of scenarios) {
    if (s.status === 'skipped') console.log(`  ${s.name}: skipped: ${s.reason.split('\n')[0]}`)
    if (s.status === 'error') console.log(`  ${s.name}: ERROR: ${s.error.split('\n')[0]}`)
  }
  printReport(result)
  const failedChecks = checks.filter((c) => !c.ok)
  if (failedChecks.length) {
    console.log('')
    console.log('sanity checks that FAILED (the numbers above may not mean what they say):')
    for (const c of failedChecks) console.log(`  - ${c.name}: ${c.detail}`)
  }

  fs.mkdirSync(path.dirname(S.OUT), { recursive: true })
  const json = JSON.stringify(result, null, 2) + '\n'
  fs.writeFileSync(S.OUT, json)
  const written = [S.OUT]
  if (S.OUT_IS_DEFAULT) {
    const stamp = startedAt.toISOString().replace(/[:.]/g, '-').replace(/-\d{3}Z$/, 'Z')
    const copy = path.join(path.dirname(S.OUT), `${S.SMOKE ? 'smoke-' : ''}${stamp}.json`)
    fs.writeFileSync(copy, json)
    written.push(copy)
  }
  console.log('')
  console.log(`results written to ${written.map((p) => path.relative(process.cwd(), p) || p).join(' and ')}`)
  if (errors.length) {
    console.log('')
    console.log('errors:')
    for (const e of errors) console.log(`  - ${e.split('\n')[0]}`)
    return 1
  }
  if (S.STRICT && result.targets.some((t) => t.met === false)) return 2
  return 0
}

// Stop by ourselves even if something hangs: a generous bound from the settings.
const perRun = S.DURATION_S + S.WARMUP_S + 35
const watchdogS = 12 * S.CONNS.length * S.ROUNDS * perRun + 1800
const watchdog = setTimeout(() => {
  log(`watchdog: run exceeded ${watchdogS} s, aborting`)
  cleanup().finally(() => process.exit(1))
}, watchdogS * 1000)
watchdog.unref()

main()
  .then(async (code) => {
    await cleanup()
    process.exitCode = code
  })
  .catch(async (e) => {
    log(`FAILED: ${e.stack ?? e}`)
    await cleanup()
    process.exitCode = 1
  })
  .finally(() => {
    clearTimeout(watchdog)
    // Whatever a subject module left open (the vusers fixture's sockets) must not keep the run alive.
    process.exit()
  })
