// One measured wrk run against a subject, with the subject's CPU time read
// from /proc around the measured part (the warm-up is not counted).
import path from 'node:path'
import { describeChild, startChild, stopChild } from './children.mjs'
import { treeCpuMicros } from './proc.mjs'
import { DURATION_S, ROOT, WARMUP_S } from './settings.mjs'
import { raceTimeout, round, which } from './util.mjs'

const SCRIPT = path.join(ROOT, 'bench', 'wrk', 'bench.lua')
let wrkBin = null

export function findWrk () {
  wrkBin = which('wrk')
  return wrkBin
}

async function execWrk (args, durationS) {
  const rec = startChild('wrk', wrkBin, args)
  rec.keepStdout = true
  const r = await Promise.race([rec.exitPromise, raceTimeout((durationS + 30) * 1000, 'timeout')])
  if (r === 'timeout') {
    await stopChild(rec, { signal: 'SIGKILL' })
    throw new Error(`wrk did not finish in ${durationS + 30} s`)
  }
  if (rec.spawnError || rec.code !== 0) throw new Error(`wrk failed: ${describeChild(rec)}`)
  return rec.stdoutAll
}

/**
 * Warm-up seconds before a measured run. A subject that cycles over many
 * profiles sat idle while the others were measured, and V8 spends that idle
 * time shrinking its heap (memory reducer GCs, code aging): measured here
 * with 10,000 profiles after 60 s idle, 4 s windows cost 413, 184, then 108
 * us of CPU per request. "Warm profiles" means every profile was used again
 * first: at least PROFILE_WARMUP_S, about two passes over 10,000 profiles.
 */
const PROFILE_WARMUP_S = 5
function warmupFor (target) {
  return (target.profiles ?? 0) > 1 ? Math.max(WARMUP_S, PROFILE_WARMUP_S) : WARMUP_S
}

/**
 * target: { port, upPort, urlPath, viaProxy, profiles, prefix, pid }
 * conn: { threads, connections }
 */
export async function runWrk (target, conn) {
  const base = ['-t', String(conn.threads), '-c', String(conn.connections), '--timeout', '5s', '-s', SCRIPT]
  const url = `http://127.0.0.1:${target.port}/`
  const scriptArgs = ['--', `127.0.0.1:${target.upPort}`, target.urlPath, target.viaProxy ? '1' : '0', String(target.profiles ?? 0), target.prefix ?? 'p']
  if (WARMUP_S > 0) await execWrk([...base, '-d', `${warmupFor(target)}s`, url, ...scriptArgs], warmupFor(target))
  const cpu0 = target.pid ? treeCpuMicros(target.pid) : null
  const out = await execWrk([...base, '-d', `${DURATION_S}s`, url, ...scriptArgs], DURATION_S)
  const cpu1 = target.pid ? treeCpuMicros(target.pid) : null
  const line = out.split('\n').find((l) => l.startsWith('BENCH_JSON '))
  if (!line) throw new Error(`wrk output has no BENCH_JSON line:\n${out}`)
  const j = JSON.parse(line.slice('BENCH_JSON '.length))
  const errors = j.err_connect + j.err_read + j.err_write + j.err_timeout
  return {
    threads: conn.threads,
    connections: conn.connections,
    duration_s: round(j.duration_us / 1e6, 3),
    requests: j.requests,
    rps: round(j.requests / (j.duration_us / 1e6), 1),
    cpu_us_per_req: cpu0 !== null && j.requests > 0 ? round((cpu1 - cpu0) / j.requests, 1) : null,
    p50_ms: round(j.p50_us / 1000, 3),
    p90_ms: round(j.p90_us / 1000, 3),
    p99_ms: round(j.p99_us / 1000, 3),
    p999_ms: round(j.p999_us / 1000, 3),
    mean_ms: round(j.lat_mean_us / 1000, 3),
    max_ms: round(j.lat_max_us / 1000, 3),
    // wrk counts responses with status >= 400 as "status errors"
    non2xx: j.err_status,
    errors,
    error_detail: { connect: j.err_connect, read: j.err_read, write: j.err_write, timeout: j.err_timeout }
  }
}
