// Heap and RSS of a ProfileRegistry holding N profiles of C cookies, in process (no HTTP):
//   npm run build; node --expose-gc bench/profile/registry-memory.mjs [N=10000] [C=20] [snap]
// With "snap", a heap snapshot is aggregated by constructor (bytes per profile).
import { loadConfig } from '../../dist/config/load.js'
import { CookieJarStore } from '../../dist/session/jar-files.js'
import { ProfileRegistry } from '../../dist/session/profiles.js'
import pino from 'pino'
import fs from 'node:fs'
import v8 from 'node:v8'
/* global gc */
import crypto from 'node:crypto'
const N = Number(process.argv[2] ?? 10000); const C = Number(process.argv[3] ?? 20)
const dataDir = fs.mkdtempSync('/tmp/sp-regmem-')
const { config } = loadConfig({ env: {}, flags: { dataDir } })
const files = new CookieJarStore(config.dataDir); files.init()
const registry = new ProfileRegistry(config, files, pino({ level: 'warn' }))
gc(); const m0 = process.memoryUsage()
for (let p = 0; p < N; p++) {
  const prof = registry.get(`p${p}`)
  const lines = []
  for (let i = 0; i < C; i++) lines.push(`s${i}=${crypto.randomBytes(16).toString('hex')}; Path=/; Max-Age=86400`)
  prof.capture(lines, 'http://127.0.0.1:8080/seed', p)
  await prof.pendingWrite
  prof.capture(['sid=abc; Path=/'], 'http://127.0.0.1:8080/', p)
  await prof.pendingWrite
  prof.jar.cookieHeader('http://127.0.0.1:8080/', 'http://127.0.0.1:8080/')
}
gc(); gc(); const m1 = process.memoryUsage()
console.log(JSON.stringify({ N, loaded: [...registry.loaded()].length, heapMB: ((m1.heapUsed - m0.heapUsed) / 1e6).toFixed(1), perProfileB: Math.round((m1.heapUsed - m0.heapUsed) / N), rssMB: (m1.rss / 1e6).toFixed(1), heapTotalMB: (m1.heapTotal / 1e6).toFixed(1), heapUsedMB: (m1.heapUsed / 1e6).toFixed(1), extMB: (m1.external / 1e6).toFixed(1), abMB: (m1.arrayBuffers / 1e6).toFixed(1) }))
if (process.argv[4]) {
  const file = v8.writeHeapSnapshot('/tmp/sp-regmem.heapsnapshot')
  const snap = JSON.parse(fs.readFileSync(file, 'utf8'))
  const m = snap.snapshot.meta; const nf = m.node_fields.length
  const types = m.node_types[0]; const strings = snap.strings
  const iType = m.node_fields.indexOf('type'); const iName = m.node_fields.indexOf('name'); const iSize = m.node_fields.indexOf('self_size')
  const agg = new Map(); const nodes = snap.nodes
  for (let i = 0; i < nodes.length; i += nf) {
    const t = types[nodes[i + iType]]
    const name = t === 'object' || t === 'closure' ? strings[nodes[i + iName]] : t
    const k = t + ':' + name
    const a = agg.get(k) ?? [0, 0]; a[0]++; a[1] += nodes[i + iSize]; agg.set(k, a)
  }
  for (const [k, [n, s]] of [...agg].sort((a, b) => b[1][1] - a[1][1]).slice(0, 30)) console.log(k.slice(0, 50).padEnd(50), String(n).padStart(9), (s / N).toFixed(0).padStart(8), 'B/profile')
}
await registry.close()
fs.rmSync(dataDir, { recursive: true, force: true })
