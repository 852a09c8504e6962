// Child processes of a run: each in its own process group, so a whole tree
// (nginx workers, squid helpers) is killed at the end, on error, SIGINT or
// SIGTERM; temp dirs are removed with them.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import { ROOT } from './settings.mjs'
import { log } from './log.mjs'

const raceTimeout = (ms, value) => sleep(ms, value, { ref: false })
/** @type {Set<any>} */
const children = new Set()
/** @type {Set<string>} */
const tempDirs = new Set()
/** set once cleanup begins: no new children or temp dirs after that */
let cleanedUp = false

export function pushTail (arr, line, max = 60) {
  arr.push(line.length > 2000 ? line.slice(0, 2000) + '…' : line)
  if (arr.length > max) arr.shift()
}

/**
 * Spawn a child in its own process group (so the whole tree can be killed),
 * draining stdout/stderr line by line (keeping a tail for diagnostics).
 */
export function startChild (name, cmd, args, { env = process.env, cwd = ROOT, onLine } = {}) {
  if (cleanedUp) throw new Error(`not starting ${name}: the run is being stopped`)
  const proc = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true })
  const rec = {
    name,
    proc,
    pid: proc.pid,
    exited: false,
    code: null,
    signal: null,
    spawnError: null,
    stdout: [],
    stderr: [],
    stdoutAll: '',
    keepStdout: false,
    exitPromise: null,
  }
  rec.exitPromise = new Promise((resolve) => {
    const done = () => {
      if (rec.exited) return
      rec.exited = true
      children.delete(rec)
      // kill leftovers of the group (e.g. nginx workers if the master died)
      killGroup(rec, 'SIGKILL')
      resolve(rec)
    }
    proc.on('error', (err) => {
      rec.spawnError = err
      done()
    })
    proc.on('exit', (code, signal) => {
      rec.code = code
      rec.signal = signal
      // wait for stdout/stderr to be fully read ('close'), but not forever: a
      // surviving grandchild could hold the pipes open
      setTimeout(done, 1000).unref()
    })
    proc.on('close', () => setImmediate(done))
  })
  for (const [stream, tail] of [[proc.stdout, rec.stdout], [proc.stderr, rec.stderr]]) {
    stream.setEncoding('utf8')
    let buf = ''
    stream.on('data', (chunk) => {
      if (stream === proc.stdout && rec.keepStdout) rec.stdoutAll += chunk
      buf += chunk
      let i
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i)
        buf = buf.slice(i + 1)
        pushTail(tail, line)
        if (onLine) onLine(line, stream === proc.stdout ? 'stdout' : 'stderr')
      }
      if (buf.length > 1_000_000) buf = buf.slice(-10_000)
    })
    stream.on('error', () => {})
  }
  if (proc.pid !== undefined) children.add(rec)
  return rec
}

export function killGroup (rec, signal) {
  if (rec.pid === undefined) return
  try {
    process.kill(-rec.pid, signal)
  } catch {
    /* already gone */
  }
}

/** Send `signal` (to the process only, or to its group), wait, then SIGKILL the group. */
export async function stopChild (rec, { signal = 'SIGTERM', group = true, timeoutMs = 5000 } = {}) {
  if (!rec || rec.exited) return rec
  const t0 = performance.now()
  try {
    if (group) process.kill(-rec.pid, signal)
    else process.kill(rec.pid, signal)
  } catch {
    /* gone */
  }
  const timer = raceTimeout(timeoutMs, 'timeout')
  const r = await Promise.race([rec.exitPromise, timer])
  rec.stopMs = performance.now() - t0
  if (r === 'timeout') {
    rec.killedHard = true
    killGroup(rec, 'SIGKILL')
    await Promise.race([rec.exitPromise, raceTimeout(3000)])
  }
  return rec
}

export function describeChild (rec) {
  const parts = [`${rec.name} (pid ${rec.pid})`]
  if (rec.spawnError) parts.push(`spawn error: ${rec.spawnError.message}`)
  if (rec.exited) parts.push(`exited code=${rec.code} signal=${rec.signal}`)
  if (rec.stderr.length) parts.push('stderr tail:\n    ' + rec.stderr.slice(-15).join('\n    '))
  if (rec.stdout.length) parts.push('stdout tail:\n    ' + rec.stdout.slice(-10).join('\n    '))
  return parts.join('; ')
}

export async function cleanup () {
  if (cleanedUp) return
  cleanedUp = true
  await Promise.all([...children].map((rec) => stopChild(rec, { timeoutMs: 3000 })))
  for (const d of tempDirs) {
    try {
      fs.rmSync(d, { recursive: true, force: true })
    } catch {
      /* ignore */
    }
  }
}

// Last resort (also runs after process.exit()): synchronous kill + rm.
process.on('exit', () => {
  for (const rec of children) killGroup(rec, 'SIGKILL')
  for (const d of tempDirs) {
    try {
      fs.rmSync(d, { recursive: true, force: true })
    } catch {
      /* ignore */
    }
  }
})

let interrupted = false
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    if (interrupted) {
      process.exit(130)
    }
    interrupted = true
    log(`${sig} received: stopping children and cleaning up`)
    cleanup().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143))
  })
}

export function makeTempDir (prefix) {
  if (cleanedUp) throw new Error('not creating a temp dir: the run is being stopped')
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `session-proxy-bench-${prefix}-`))
  tempDirs.add(d)
  return d
}

/** True once cleanup has begun: nothing new is started after that. */
export function stopping () {
  return cleanedUp
}
