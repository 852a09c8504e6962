// Run settings, read once from the environment (see bench/README.md).
import path from 'node:path'
import { fileURLToPath } from 'node:url'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..')
const ENV = process.env

function parseDuration (raw, name) {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(String(raw).trim())
  if (!m) throw new Error(`${name}: expected a duration like 10, 10s or 1m, got ${JSON.stringify(raw)}`)
  const n = Number(m[1])
  return m[2] === 'ms' ? n / 1000 : m[2] === 'm' ? n * 60 : n
}

function parseIntEnv (raw, name, dflt) {
  if (raw === undefined || raw === '') return dflt
  if (!/^\d+$/.test(raw)) throw new Error(`${name}: expected a whole number, got ${JSON.stringify(raw)}`)
  return Number(raw)
}

const yes = (v) => /^(1|true|yes)$/i.test(v ?? '')

export const SMOKE = yes(ENV.BENCH_SMOKE)
// wrk takes whole seconds
export const DURATION_S = SMOKE ? 1 : Math.max(1, Math.round(parseDuration(ENV.BENCH_DURATION ?? '10s', 'BENCH_DURATION')))
export const WARMUP_S = SMOKE ? 0 : Math.round(parseDuration(ENV.BENCH_WARMUP ?? '1s', 'BENCH_WARMUP'))
export const ROUNDS = SMOKE ? 1 : Math.max(1, parseIntEnv(ENV.BENCH_ROUNDS, 'BENCH_ROUNDS', 3))
export const PROFILES = SMOKE ? 200 : parseIntEnv(ENV.BENCH_PROFILES, 'BENCH_PROFILES', 10_000)
export const BIG_PROFILES = SMOKE ? 0 : parseIntEnv(ENV.BENCH_BIG_PROFILES, 'BENCH_BIG_PROFILES', 100_000)
export const COOKIES_PER_PROFILE = 20
export const COOKIES_PER_BIG_PROFILE = 5
export const STARTUP_RUNS = SMOKE ? 1 : Math.max(1, parseIntEnv(ENV.BENCH_STARTUP_RUNS, 'BENCH_STARTUP_RUNS', 5))
export const STRICT = yes(ENV.BENCH_STRICT)
export const PROXY_BIN = path.resolve(ROOT, ENV.BENCH_PROXY_BIN || 'dist/cli.js')
export const PROXY_CONFIG = ENV.BENCH_PROXY_CONFIG ? path.resolve(ENV.BENCH_PROXY_CONFIG) : undefined
export const UPSTREAM_KIND = (ENV.BENCH_UPSTREAM ?? '').toLowerCase()
export const ALL_PEERS = ['squid', 'tinyproxy', 'mitmproxy']
export const PEERS = (() => {
  const raw = ENV.BENCH_PEERS
  if (SMOKE && raw === undefined) return []
  if (raw === undefined || raw === '' || raw === 'all') return ALL_PEERS
  if (raw === 'none') return []
  const list = raw.split(',').map((s) => s.trim()).filter(Boolean)
  for (const p of list) if (!ALL_PEERS.includes(p)) throw new Error(`BENCH_PEERS: unknown peer ${p} (known: ${ALL_PEERS.join(', ')})`)
  return list
})()
export const CONNS = [
  { key: 'c32', threads: 2, connections: 32 },
  { key: 'c1', threads: 1, connections: 1 }
]
const DEFAULT_OUT_DIR = path.join(ROOT, 'bench', 'results')
export const OUT = ENV.BENCH_OUT
  ? path.resolve(ENV.BENCH_OUT)
  : path.join(DEFAULT_OUT_DIR, SMOKE ? 'smoke-latest.json' : 'latest.json')
export const OUT_IS_DEFAULT = !ENV.BENCH_OUT

/** Issue 12's targets, checked against the medians of the rounds. */
export const TARGETS = {
  defaultsVsSquid: 1.3,
  cpuVsBare: 1.15,
  vsTinyproxy: 2.5,
  vsMitmproxy: 20,
  rotateOverFixed: 0.85,
  profilesOverSingle: 0.95,
  profilesRssMb: 150,
  startupMs: 300
}
