#!/usr/bin/env node
/**
 * Soak test: one proxy process (dist/cli.js) under minutes of mixed traffic,
 * loopback only, with its RSS and open descriptors sampled from /proc.
 *
 *   npm run soak                      # 180 s
 *   SOAK_SECONDS=120 npm run soak
 *
 * Traffic (each kind a bounded loop that stops at the deadline):
 *   plain       GETs through the proxy, 50 profiles, cookies rotated on every answer
 *   login       autopilot profiles against a Spring-shaped form login (test fixture);
 *               sessions invalidated and CSRF tokens rotated every 10 s (re-logins)
 *   websocket   ws:// handshakes through the proxy, messages, clean and abrupt closes
 *   tunnel      intercepted https (CONNECT) with curl --cacert <GET /_session/ca.pem>
 *               and undici's ProxyAgent
 *   abort       clients that go away mid-download or while waiting (plain and managed path)
 *   refusal     refused CONNECT / upgrade followed by a client reset
 *   hostile     half-sent heads, slowloris, a Content-Length never sent, garbage bytes
 *   admin       health, metrics, cookie listings, cookies.txt imports
 *
 * Env: SOAK_SECONDS (180), SOAK_WARMUP_SECONDS (a third, at most 90), SOAK_RSS_TOLERANCE_MB
 * (32, or 25 % of the warm RSS if larger), SOAK_FD_TOLERANCE (32), SOAK_MIX (comma list
 * of kinds, default all), SOAK_SKIP (kinds to leave out, e.g. refusal while that crash
 * is open), SOAK_JSON (file for the samples and the summary), SOAK_PROXY_NODE_OPTIONS
 * (NODE_OPTIONS for the proxy only; default --max-old-space-size=96, '' for none).
 *
 * Fails (exit 1) when the proxy dies, when RSS or descriptors after warm-up grow
 * beyond the tolerance (end of load vs the first window after warm-up, and again
 * after the traffic stopped and idle connections closed), or when health is not
 * ok at the end.
 */
import { readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { register } from 'tsx/esm/api'

// The soak reuses the test helpers and fixtures (TypeScript) through tsx.
const ROOT = fileURLToPath(new URL('..', import.meta.url))
register()
const load = (p) => import(pathToFileURL(join(ROOT, p)).href)
const { startProxy, startUpstream, cleanup } = await load('test/helpers/proxy.ts')
const { createTestCa, startHttpsUpstream } = await load('test/helpers/tls.ts')
const { startWsUpstream, openWs } = await load('test/helpers/ws.ts')
const { startSpringLike } = await load('test/helpers/spring-like.ts')
const { traffic } = await load('scripts/soak/traffic.ts')
const { ProxyAgent } = await import('undici')

const env = (name, fallback) => {
  const v = Number(process.env[name])
  return Number.isFinite(v) && process.env[name] !== '' && process.env[name] !== undefined ? v : fallback
}
const SECONDS = env('SOAK_SECONDS', 180)
// V8 grows its heap for the first half minute or so of steady load (measured: plain traffic
// alone rises 72 -> ~210 MiB in 30 s, then stays flat): compare only after that.
const WARMUP = env('SOAK_WARMUP_SECONDS', Math.min(90, Math.round(SECONDS / 3)))
const RSS_TOL_MB = env('SOAK_RSS_TOLERANCE_MB', 32)
const FD_TOL = env('SOAK_FD_TOLERANCE', 32)
const KINDS = ['plain', 'login', 'websocket', 'tunnel', 'abort', 'refusal', 'hostile', 'admin']
const mix = (process.env.SOAK_MIX ?? '').split(',').filter(Boolean)
const skip = (process.env.SOAK_SKIP ?? '').split(',').filter(Boolean)
const enabled = KINDS.filter((k) => (mix.length === 0 || mix.includes(k)) && !skip.includes(k))

function procSample (pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0)
  const fds = readdirSync(`/proc/${pid}/fd`).length
  return { rssMb: Math.round(rssKb / 102.4) / 10, fds }
}
/** The proxy's TCP sockets by role: clients (local port = the listener) or the upstream they lead to. */
function socketsByPeer (pid, names) {
  const inodes = new Set()
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try { const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`)); if (m) inodes.add(m[1]) } catch {}
  }
  const counts = {}
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = ''
    try { text = readFileSync(file, 'utf8') } catch { continue }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/)
      if (f.length < 10 || !inodes.has(f[9])) continue
      const localPort = parseInt(f[1].split(':')[1], 16)
      const remotePort = parseInt(f[2].split(':')[1], 16)
      const role = f[3] === '0A' ? 'listening' : localPort === names.listen ? 'clients' : (names[remotePort] ?? `port ${remotePort}`)
      counts[role] = (counts[role] ?? 0) + 1
    }
  }
  return counts
}
/** Open descriptors by kind: sockets, pipes, files in the data dir, other. */
function fdKinds (pid, dataDir) {
  const counts = {}
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let link = ''
    try { link = readlinkSync(`/proc/${pid}/fd/${fd}`) } catch { continue }
    const kind = link.startsWith('socket:') ? 'sockets' : link.startsWith('pipe:') ? 'pipes' : link.startsWith('anon_inode:') ? link.slice(11).replace(/^\[|\]$/g, '') : link.startsWith(dataDir) ? 'data dir files' : 'other'
    counts[kind] = (counts[kind] ?? 0) + 1
  }
  return counts
}
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s.length === 0 ? NaN : s[Math.floor(s.length / 2)] }

// Upstreams, all on 127.0.0.1 free ports.
const ca = createTestCa('soak upstream CA')
const springs = [await startSpringLike({ csrf: 'cookie' }), await startSpringLike({})]
const wsUp = await startWsUpstream()
let rotation = 0
const rotating = await startUpstream((req, res) => {
  req.resume()
  const u = new URL(req.url, 'http://x')
  if (u.pathname === '/slow') {
    // 64 KiB every 50 ms for ~3 s: a client that leaves mid-download.
    res.writeHead(200, { 'content-type': 'application/octet-stream' })
    let n = 0
    const chunk = Buffer.alloc(65536, 120)
    const timer = setInterval(() => { if (++n > 60 || res.destroyed) { clearInterval(timer); res.end() } else res.write(chunk) }, 50)
    res.on('close', () => clearInterval(timer))
    return
  }
  if (u.pathname === '/delay') {
    const timer = setTimeout(() => { res.writeHead(200); res.end('late') }, 2000)
    res.on('close', () => clearTimeout(timer))
    return
  }
  rotation++
  const k = rotation % 20
  res.writeHead(200, [
    'content-type', 'application/json',
    'set-cookie', `rot=${rotation}; Path=/; Max-Age=600; HttpOnly`,
    'set-cookie', `k${k}=${'v'.repeat(rotation % 200)}; Path=/`,
    'set-cookie', `k${(k + 10) % 20}=; Path=/; Max-Age=0`
  ])
  res.end(JSON.stringify({ cookie: req.headers.cookie ?? null }))
})
const tls = await startHttpsUpstream((req, res) => {
  req.resume()
  res.writeHead(200, { 'content-type': 'text/plain', 'set-cookie': `t=${Date.now()}; Path=/; Secure` })
  res.end(`tls ok ${req.headers.cookie ?? ''}`)
}, ca, ['localhost', '127.0.0.1'])

const SPRING_ENV = { SOAK_ALICE: 'alice-secret', SOAK_BOB: 'bob-secret' }
const profiles = {}
for (let i = 0; i < 4; i++) {
  const s = springs[i % 2]
  const user = i % 2 === 0 ? 'alice' : 'bob'
  profiles[`login-${i}`] = { autopilot: [{ match: `127.0.0.1:${s.port}`, login: { preset: 'spring-form', username: user, password: { env: user === 'alice' ? 'SOAK_ALICE' : 'SOAK_BOB' } }, csrf: [{ preset: s.options.csrf === 'cookie' ? 'spring-cookie' : 'spring' }] }] }
}
// The managed (autopilot) path without a login, for aborts there.
profiles['managed-abort'] = { autopilot: [{ match: `127.0.0.1:${rotating.port}`, csrf: [{ preset: 'tomcat' }] }] }

const dataDir = mkdtempSync(join(tmpdir(), 'sp-soak-'))
const proxy = await startProxy({
  dataDir,
  logLevel: 'warn',
  // The proxy's old space is capped (SOAK_PROXY_NODE_OPTIONS, default --max-old-space-size=96):
  // uncapped, V8 grows its heap lazily under the full mix (measured: 153 -> 213 MiB in
  // 120 s, flat at 157 MiB with an 80 MiB cap and more traffic), which reads as a leak;
  // capped, a real leak ends the proxy out of memory, and that fails the soak.
  env: { ...SPRING_ENV, NODE_OPTIONS: process.env.SOAK_PROXY_NODE_OPTIONS ?? '--max-old-space-size=96' },
  args: ['--upstream-ca', ca.file, '--connect-port', String(tls.port)],
  config: { profiles }
})
const pid = proxy.proc.pid
const t0 = Date.now()
let died = null
let stopping = false
proxy.proc.once('exit', (code, signal) => { if (!stopping) died = { code, signal, at: Math.round((Date.now() - t0) / 1000) } })
const caPem = await (await fetch(`${proxy.url}/_session/ca.pem`)).text()
const caFile = join(dataDir, 'client-ca.pem')
writeFileSync(caFile, caPem)

const samples = []
const deadline = t0 + SECONDS * 1000
const start = procSample(pid)
samples.push({ t: 0, ...start })
const sampler = setInterval(() => {
  if (died !== null) return
  try { samples.push({ t: (Date.now() - t0) / 1000, ...procSample(pid) }) } catch {}
}, 1000)

console.log(`soak: ${SECONDS} s against pid ${pid} (${proxy.url}); warm-up ${WARMUP} s; kinds: ${enabled.join(', ')}`)
const ctx = {
  proxy,
  deadline,
  isDead: () => died !== null,
  caFile,
  caPem,
  ProxyAgent,
  openWs,
  springs,
  wsUp,
  rotating,
  tls,
  enabled
}
const stats = await traffic(ctx)
clearInterval(sampler)

// Quiesce: traffic stopped; idle pool connections (idleTimeoutMs 4 s) and held sockets close.
let quiet = null
const peerNames = { listen: proxy.port, [springs[0].port]: 'spring (cookie csrf)', [springs[1].port]: 'spring (session csrf)', [wsUp.port]: 'websocket upstream', [rotating.port]: 'rotating/slow upstream', [tls.port]: 'https upstream' }
let atEnd = null
let afterQuiesce = null
let fdsAtEnd = null
let fdsAfterQuiesce = null
try { atEnd = socketsByPeer(pid, peerNames); fdsAtEnd = fdKinds(pid, dataDir) } catch {}
if (died === null) {
  await new Promise((resolve) => setTimeout(resolve, 8000))
  try { quiet = procSample(pid); afterQuiesce = socketsByPeer(pid, peerNames); fdsAfterQuiesce = fdKinds(pid, dataDir) } catch {}
}
let health = null
if (died === null) {
  try {
    const r = await fetch(`${proxy.url}/_session/health`, { signal: AbortSignal.timeout(5000) })
    health = { status: r.status, body: await r.json() }
  } catch (err) { health = { status: 0, body: String(err) } }
}
stopping = true
const exitCode = died === null ? await proxy.stop() : died.code

const warm = samples.filter((s) => s.t >= WARMUP && s.t < WARMUP + 15)
const endWindow = samples.filter((s) => s.t >= SECONDS - 15)
const warmRss = median(warm.map((s) => s.rssMb))
const endRss = median(endWindow.map((s) => s.rssMb))
const warmFd = median(warm.map((s) => s.fds))
const endFd = median(endWindow.map((s) => s.fds))
const rssTol = Math.max(RSS_TOL_MB, Number.isFinite(warmRss) ? Math.round(warmRss * 0.25) : 0)
const peak = samples.reduce((a, s) => ({ rssMb: Math.max(a.rssMb, s.rssMb), fds: Math.max(a.fds, s.fds) }), { rssMb: 0, fds: 0 })

const failures = []
if (died !== null) failures.push(`the proxy died at ${died.at} s (code ${died.code}, signal ${died.signal}): ${proxy.output.filter((l) => /error|at /i.test(l)).slice(-8).join(' | ')}`)
const measured = warm.length > 0 && endWindow.length > 0
if (!measured && died === null) failures.push(`too few samples to compare (${samples.length}); run longer than the warm-up plus 15 s`)
if (measured && !(endRss - warmRss <= rssTol)) failures.push(`RSS grew ${warmRss} -> ${endRss} MiB after warm-up (tolerance ${rssTol} MiB)`)
if (measured && !(endFd - warmFd <= FD_TOL)) failures.push(`descriptors grew ${warmFd} -> ${endFd} after warm-up (tolerance ${FD_TOL})`)
if (quiet !== null && quiet.fds - warmFd > FD_TOL) failures.push(`descriptors did not come back after the traffic stopped: ${quiet.fds} vs ${warmFd} after warm-up`)
if (quiet !== null && quiet.rssMb - warmRss > rssTol) failures.push(`RSS after the traffic stopped ${quiet.rssMb} MiB vs ${warmRss} after warm-up`)
if (died === null && (health?.status !== 200 || health.body?.status !== 'ok')) failures.push(`health at the end: ${JSON.stringify(health)}`)

const row = (cells) => `| ${cells.join(' | ')} |`
const out = []
out.push(`session-proxy soak: ${SECONDS} s, warm-up ${WARMUP} s, node ${process.version}, ${new Date().toISOString()}`)
out.push('')
out.push(row(['measure', 'start', 'after warm-up', 'end of load', 'peak', 'after quiesce', 'tolerance']))
out.push(row(['---', '---:', '---:', '---:', '---:', '---:', '---:']))
const cell = (v) => Number.isFinite(v) ? v : '-'
out.push(row(['RSS (MiB)', start.rssMb, cell(warmRss), cell(endRss), peak.rssMb, quiet?.rssMb ?? '-', `+${rssTol}`]))
out.push(row(['open fds', start.fds, cell(warmFd), cell(endFd), peak.fds, quiet?.fds ?? '-', `+${FD_TOL}`]))
// RSS and descriptors over time (a plateau after warm-up is heap sizing; a line that keeps rising is a leak).
const marks = []
for (let k = 0; k <= 10; k++) {
  const at = SECONDS * k / 10
  const s = samples.reduce((best, x) => Math.abs(x.t - at) < Math.abs(best.t - at) ? x : best, samples[0])
  if (s !== undefined && (marks.length === 0 || marks.at(-1).t !== s.t)) marks.push(s)
}
out.push('')
out.push(`over time (s: MiB/fds): ${marks.map((s) => `${Math.round(s.t)}: ${s.rssMb}/${s.fds}`).join(', ')}`)
out.push('')
out.push(`descriptors at the end of load: ${JSON.stringify(fdsAtEnd)}; after quiesce: ${JSON.stringify(fdsAfterQuiesce)}`)
out.push(`TCP sockets at the end of load: ${JSON.stringify(atEnd)}; after quiesce: ${JSON.stringify(afterQuiesce)}`)
out.push('')
out.push(row(['traffic', 'attempts', 'as expected', 'other', 'top outcomes']))
out.push(row(['---', '---:', '---:', '---:', '---']))
for (const [kind, s] of Object.entries(stats)) {
  const top = Object.entries(s.outcomes).sort((a, b) => b[1] - a[1]).slice(0, 4).map(([k, v]) => `${k} ${v}`).join(', ')
  out.push(row([kind, s.attempts, s.ok, s.attempts - s.ok, top]))
}
out.push('')
out.push(failures.length === 0 ? `PASS (proxy exit code ${exitCode})` : `FAIL:\n- ${failures.join('\n- ')}`)
console.log(out.join('\n'))
if (process.env.SOAK_JSON) writeFileSync(process.env.SOAK_JSON, JSON.stringify({ seconds: SECONDS, warmup: WARMUP, start, warmRss, endRss, warmFd, endFd, peak, quiet, stats, failures, sockets: { atEnd, afterQuiesce }, samples }, null, 2))

for (const s of springs) await s.close()
await wsUp.close()
await rotating.close()
await tls.close()
cleanup(dataDir, ca.dir)
rmSync(caFile, { force: true })
process.exit(failures.length === 0 ? 0 : 1)
