#!/usr/bin/env node
/**
 * Supply-chain check for CI: `npm audit --omit=dev` of the runtime
 * dependencies. Fails (exit 1) on any high or critical finding. When the
 * audit endpoint itself cannot be reached or refuses the request (offline
 * machine, a registry mirror without the advisories API: 405), it prints a
 * warning and exits 0, so the check never blocks a machine that cannot run
 * it, and never passes silently either.
 */
import { spawnSync } from 'node:child_process'

const r = spawnSync('npm', ['audit', '--omit=dev', '--json'], { encoding: 'utf8', maxBuffer: 64 << 20, timeout: 120_000 })
const out = r.stdout ?? ''
let report = null
try { report = JSON.parse(out) } catch {}

const unreachable = /ENOTFOUND|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EAI_AGAIN|ENETUNREACH|EHOSTUNREACH|audit endpoint returned an error/i
const refused = report !== null && (typeof report.statusCode === 'number' || (report.error !== undefined && report.metadata === undefined))
if (r.error !== undefined && r.error.code === 'ENOENT') {
  console.error('audit: npm is not installed')
  process.exit(1)
}
if (refused || (report === null && unreachable.test(`${out}\n${r.stderr ?? ''}`))) {
  const why = report?.message ?? report?.error?.summary ?? (r.stderr ?? '').split('\n').find((l) => unreachable.test(l)) ?? 'no answer'
  console.warn(`audit: WARNING: the npm audit endpoint could not be used (${String(why).trim()}); runtime dependencies were NOT checked`)
  process.exit(0)
}
const counts = report?.metadata?.vulnerabilities
if (counts === undefined) {
  console.error(`audit: unexpected npm audit output (exit ${r.status}):\n${out.slice(0, 2000)}\n${(r.stderr ?? '').slice(0, 2000)}`)
  process.exit(1)
}
const high = (counts.high ?? 0) + (counts.critical ?? 0)
console.log(`audit: runtime dependencies: ${Object.entries(counts).map(([k, v]) => `${k} ${v}`).join(', ')}`)
if (high > 0) {
  for (const [name, v] of Object.entries(report.vulnerabilities ?? {})) {
    if (v.severity === 'high' || v.severity === 'critical') console.error(`audit: ${v.severity}: ${name} ${v.range ?? ''}`)
  }
  console.error(`audit: ${high} high or critical finding(s) in runtime dependencies`)
  process.exit(1)
}
