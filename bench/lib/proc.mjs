// What a process tree costs, read from /proc: memory (VmRSS, VmHWM) and CPU
// time (utime + stime), so every proxy is charged for its own work only.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { round } from './util.mjs'

export function procStatus (pid) {
  try {
    const txt = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
    const kb = (k) => {
      const m = new RegExp(`^${k}:\\s+(\\d+)\\s*kB`, 'm').exec(txt)
      return m ? Number(m[1]) : null
    }
    return { hwmKb: kb('VmHWM'), rssKb: kb('VmRSS') }
  } catch {
    return null
  }
}

/** pid plus all its descendants (scan of /proc/<pid>/stat). */
export function processTree (rootPid) {
  const kids = new Map()
  for (const ent of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(ent)) continue
    try {
      const stat = fs.readFileSync(`/proc/${ent}/stat`, 'utf8')
      const after = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      const ppid = Number(after[1])
      if (!kids.has(ppid)) kids.set(ppid, [])
      kids.get(ppid).push(Number(ent))
    } catch {
      /* raced with exit */
    }
  }
  const out = [rootPid]
  for (let i = 0; i < out.length; i++) for (const k of kids.get(out[i]) ?? []) out.push(k)
  return out
}

/** Reset VmHWM (peak RSS) of the tree: `echo 5 > /proc/PID/clear_refs` (Linux >= 4.0). */
export function resetPeakRss (rootPid) {
  let ok = true
  for (const pid of processTree(rootPid)) {
    try {
      fs.writeFileSync(`/proc/${pid}/clear_refs`, '5')
    } catch {
      ok = false
    }
  }
  return ok
}

/** Sum of VmHWM / VmRSS over the process tree, in MB. */
export function treeMemory (rootPid) {
  const pids = processTree(rootPid)
  let hwm = 0
  let rss = 0
  let seen = 0
  for (const pid of pids) {
    const s = procStatus(pid)
    if (!s) continue
    seen++
    hwm += s.hwmKb ?? 0
    rss += s.rssKb ?? 0
  }
  if (!seen) return null
  return { peak_mb: round(hwm / 1024, 1), rss_mb: round(rss / 1024, 1), processes: seen }
}

export function dirBytes (dir) {
  let total = 0
  let files = 0
  const walk = (d) => {
    let ents
    try {
      ents = fs.readdirSync(d, { withFileTypes: true })
    } catch {
      return
    }
    for (const e of ents) {
      const p = path.join(d, e.name)
      if (e.isDirectory()) walk(p)
      else {
        try {
          total += fs.statSync(p).size
          files++
        } catch {
          /* ignore */
        }
      }
    }
  }
  walk(dir)
  return { bytes: total, files }
}

const CLK_TCK = (() => {
  const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' })
  const n = Number(r.stdout?.trim())
  return Number.isFinite(n) && n > 0 ? n : 100
})()

/** User + system CPU time of the process tree so far, in microseconds. */
export function treeCpuMicros (rootPid) {
  let ticks = 0
  for (const pid of processTree(rootPid)) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      // fields 14 and 15 of stat (utime, stime); f[0] is field 3
      ticks += Number(f[11]) + Number(f[12])
    } catch {
      /* raced with exit */
    }
  }
  return (ticks * 1e6) / CLK_TCK
}
