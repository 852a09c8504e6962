// The cost of reading an unloaded profile back from disk (limits.maxProfilesLoaded,
// maxCookiesLoaded, profileIdleUnloadMs): N profiles of C cookies are written,
// the registry is closed, and a fresh one loads each profile on first use.
//   npm run build; node bench/profile/reload-cost.mjs [N=2000] [C=20]
import crypto from 'node:crypto'
import fs from 'node:fs'
import { performance } from 'node:perf_hooks'
import pino from 'pino'
import { loadConfig } from '../../dist/config/load.js'
import { CookieJarStore } from '../../dist/session/jar-files.js'
import { ProfileRegistry } from '../../dist/session/profiles.js'

const N = Number(process.argv[2] ?? 2000)
const C = Number(process.argv[3] ?? 20)
const dataDir = fs.mkdtempSync('/tmp/sp-reload-')
const { config } = loadConfig({ env: {}, flags: { dataDir } })
const open = () => {
  const files = new CookieJarStore(config.dataDir)
  files.init()
  return new ProfileRegistry(config, files, pino({ level: 'warn' }))
}
let registry = open()
for (let p = 0; p < N; p++) {
  const prof = registry.get(`p${p}`)
  const lines = []
  for (let i = 0; i < C; i++) lines.push(`s${i}=${crypto.randomBytes(16).toString('hex')}; Path=/; Max-Age=86400`)
  prof.capture(lines, 'http://127.0.0.1:8080/seed', p)
  await prof.pendingWrite
}
await registry.close()
registry = open()
const cpu0 = process.cpuUsage()
const t0 = performance.now()
let header = 0
for (let p = 0; p < N; p++) header += registry.get(`p${p}`).jar.cookieHeader('http://127.0.0.1:8080/', 'k').length
const wallMs = (performance.now() - t0) / N
const cpu = process.cpuUsage(cpu0)
console.log(JSON.stringify({ profiles: N, cookies: C, reloadMsEach: Number(wallMs.toFixed(3)), cpuMsEach: Number(((cpu.user + cpu.system) / 1000 / N).toFixed(3)), headerChars: header / N }))
await registry.close()
fs.rmSync(dataDir, { recursive: true, force: true })
