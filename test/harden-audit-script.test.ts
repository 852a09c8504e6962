/**
 * scripts/audit.mjs (CI's supply-chain line): fails on high findings, warns
 * and passes when the audit endpoint cannot be used. A stand-in `npm` on PATH
 * answers as the real one does in each case.
 */
import { spawnSync } from 'node:child_process'
import { chmodSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { cleanup, ROOT, tempDir } from './helpers/proxy.js'

function runAudit (t: { teardown: (fn: () => void) => void }, stdout: string, stderr: string, code: number): { status: number | null, out: string } {
  const bin = tempDir('sp-fake-npm-')
  t.teardown(() => cleanup(bin))
  writeFileSync(join(bin, 'out.json'), stdout)
  writeFileSync(join(bin, 'err.txt'), stderr)
  writeFileSync(join(bin, 'npm'), `#!/bin/sh\ncat "${bin}/out.json"\ncat "${bin}/err.txt" >&2\nexit ${code}\n`)
  chmodSync(join(bin, 'npm'), 0o755)
  const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'audit.mjs')], { encoding: 'utf8', env: { ...process.env, PATH: `${bin}:${process.env.PATH ?? ''}` } })
  return { status: r.status, out: r.stdout + r.stderr }
}

const meta = (v: Record<string, number>): string => JSON.stringify({ auditReportVersion: 2, vulnerabilities: v.high > 0 ? { badpkg: { name: 'badpkg', severity: 'high', range: '<1.2.3' } } : {}, metadata: { vulnerabilities: { info: 0, low: 0, moderate: 0, high: 0, critical: 0, total: 0, ...v } } })

t.test('a high finding fails the check and names the package', async (t) => {
  const r = runAudit(t, meta({ high: 1, total: 1 }), '', 1)
  t.equal(r.status, 1)
  t.match(r.out, /high: badpkg/)
})

t.test('moderate findings only: passes', async (t) => {
  const r = runAudit(t, meta({ moderate: 2, total: 2 }), '', 1)
  t.equal(r.status, 0)
  t.match(r.out, /moderate 2/)
})

t.test('the endpoint refuses (405): a warning, exit 0', async (t) => {
  const body = JSON.stringify({ message: '405 Method Not Allowed - POST https://registry.npmjs.org/-/npm/v1/security/advisories/bulk', statusCode: 405, error: { summary: '', detail: '' } })
  const r = runAudit(t, body, 'npm error audit endpoint returned an error\n', 1)
  t.equal(r.status, 0)
  t.match(r.out, /WARNING: the npm audit endpoint could not be used \(405/)
})

t.test('the endpoint cannot be reached: a warning, exit 0', async (t) => {
  const r = runAudit(t, '', 'npm error code ENOTFOUND\nnpm error request to https://registry.npmjs.org failed, reason: getaddrinfo ENOTFOUND registry.npmjs.org\n', 1)
  t.equal(r.status, 0)
  t.match(r.out, /WARNING/)
})

t.test('output it does not understand fails loudly', async (t) => {
  const r = runAudit(t, 'something else', 'boom\n', 1)
  t.equal(r.status, 1)
  t.match(r.out, /unexpected npm audit output/)
})
