// Scenario: N logged-in virtual users (issue 13). A small fixture app with a
// form login (POST /login -> 303 + sid cookie; GET /api/me -> 200 with the
// session, 401 without), session-proxy with one `profiles: { "vu-*": ... }`
// block and a credentials CSV of N rows, and wrk cycling X-Session-Profile
// over vu-1 ... vu-N. A warm-up pass logs everyone in; the measured pass
// should run no login at all. Reports throughput, CPU per request, and the
// logins counted in GET /_session/metrics.
//
//   BENCH_VUSERS=1000 node bench/run.mjs     # as part of a bench run
//   node bench/lib/vusers.mjs 1000 [seconds] # on its own (after npm run build)
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { cleanup, describeChild, makeTempDir, startChild, stopChild } from './children.mjs'
import { log } from './log.mjs'
import { treeCpuMicros } from './proc.mjs'
import { startSessionProxy, stopSessionProxy } from './subjects.mjs'
import { WARMUP_S } from './settings.mjs'
import { freePort, round, waitUntil, which } from './util.mjs'

const APP = `
import http from 'node:http'
import { randomBytes } from 'node:crypto'
const sessions = new Map()
http.createServer((req, res) => {
  const sid = /(?:^|; )sid=([0-9a-f]+)/.exec(req.headers.cookie ?? '')?.[1]
  if (req.method === 'POST' && req.url === '/login') {
    let body = ''
    req.on('data', (c) => { body += c })
    req.on('end', () => {
      const f = new URLSearchParams(body)
      const m = /^user(\\d+)$/.exec(f.get('username') ?? '')
      if (m === null || f.get('password') !== 'pw-' + m[1]) { res.writeHead(200, { 'content-type': 'text/plain' }); res.end('bad credentials'); return }
      const id = randomBytes(16).toString('hex')
      sessions.set(id, f.get('username'))
      res.writeHead(303, { location: '/api/me', 'set-cookie': 'sid=' + id + '; Path=/; HttpOnly', 'content-length': '0' })
      res.end()
    })
    return
  }
  const user = sid !== undefined ? sessions.get(sid) : undefined
  if (user === undefined) { res.writeHead(401, { 'content-type': 'text/plain', 'content-length': '9' }); res.end('logged out'.slice(0, 9)); return }
  const out = JSON.stringify({ user })
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(out)) })
  res.end(out)
}).listen(Number(process.argv[1]), '127.0.0.1', () => console.log('listening'))
`

function wrkScript (count, appPort) {
  return `
local n, i, reqs = ${count}, 0, {}
for k = 1, n do
  reqs[k] = wrk.format("GET", "http://127.0.0.1:${appPort}/api/me", { ["Host"] = "127.0.0.1:${appPort}", ["X-Session-Profile"] = "vu-" .. k })
end
function init (args) i = math.random(n) - 1 end
function request () i = i % n + 1 return reqs[i] end
`
}

async function runWrkOnce (wrkBin, args) {
  return await new Promise((resolve, reject) => {
    const child = spawn(wrkBin, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (c) => { out += c })
    child.stderr.on('data', (c) => { out += c })
    child.on('error', reject)
    child.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`wrk exited ${code}: ${out}`))))
  })
}

function parseWrk (out) {
  const requests = Number(/(\d+) requests in ([\d.]+)(m?s)/.exec(out)?.[1] ?? NaN)
  const m = /requests in ([\d.]+)(ms|s|m)/.exec(out)
  const seconds = m ? Number(m[1]) * (m[2] === 'ms' ? 0.001 : m[2] === 'm' ? 60 : 1) : NaN
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0)
  return { requests, seconds, non2xx }
}

async function loginCounts (proxyPort) {
  const res = await fetch(`http://127.0.0.1:${proxyPort}/_session/metrics`)
  const text = await res.text()
  const sum = (family) => {
    let total = 0
    const profiles = new Set()
    for (const m of text.matchAll(new RegExp(`^${family}\\{profile="(vu-\\d+)",outcome="succeeded"\\} (\\d+)$`, 'gm'))) { total += Number(m[2]); profiles.add(m[1]) }
    return { total, profiles: profiles.size }
  }
  return { logins: sum('session_proxy_logins_total'), relogins: sum('session_proxy_relogins_total') }
}

/** One request per user through the proxy (32 at a time): each is logged in before the measurement. */
async function loginAll (count, proxyPort, appPort) {
  const statuses = new Map()
  let next = 1
  const one = (k) => new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port: proxyPort, method: 'GET', path: `http://127.0.0.1:${appPort}/api/me`, headers: { host: `127.0.0.1:${appPort}`, 'x-session-profile': `vu-${k}` } }, (res) => {
      res.resume()
      res.on('end', () => resolve(res.statusCode))
    })
    req.on('error', (e) => resolve(e.code ?? 'error'))
    req.end()
  })
  await Promise.all(Array.from({ length: Math.min(32, count) }, async () => {
    while (next <= count) {
      const status = await one(next++)
      statuses.set(status, (statuses.get(status) ?? 0) + 1)
    }
  }))
  return Object.fromEntries(statuses)
}

/** Runs the scenario; returns the numbers for the bench result (`result.vusers`). */
export async function runVusers ({ count, tmpRoot, durationS = 10, connections = 32 }) {
  const wrkBin = which('wrk')
  if (!wrkBin) return { status: 'skipped', reason: 'wrk is not installed' }
  const dir = path.join(tmpRoot, 'vusers')
  fs.mkdirSync(dir, { recursive: true })
  const appPort = await freePort()
  const app = startChild('vusers-app', process.execPath, ['--input-type=module', '-e', APP, String(appPort)])
  app.keepStdout = true
  let sp = null
  try {
    await waitUntil(() => app.stdoutAll.includes('listening'), { timeoutMs: 10000, what: 'the vusers fixture app', abortIf: () => (app.code !== null ? `exited ${app.code}` : null) })
    const csv = path.join(dir, 'users.csv')
    fs.writeFileSync(csv, 'profile,username,password\n' + Array.from({ length: count }, (_, k) => `vu-${k + 1},user${k + 1},pw-${k + 1}`).join('\n') + '\n')
    const config = path.join(dir, 'config.json')
    fs.writeFileSync(config, JSON.stringify({
      metrics: { maxProfileLabels: count + 10 },
      limits: { maxProfilesLoaded: Math.max(1000, count + 10) },
      profiles: {
        'vu-*': {
          credentials: { file: csv },
          autopilot: [{
            match: `127.0.0.1:${appPort}`,
            baseUrl: `http://127.0.0.1:${appPort}`,
            login: { steps: [{ name: 'login', method: 'POST', url: '/login', form: { username: '{{username}}', password: '{{password}}' }, expect: { status: [303] } }] },
            loggedOut: { status: [401] }
          }]
        }
      }
    }))
    const script = path.join(dir, 'vusers.lua')
    fs.writeFileSync(script, wrkScript(count, appPort))
    sp = await startSessionProxy(tmpRoot, { config })
    const base = ['-t', '2', '-c', String(connections), '--timeout', '10s', '-s', script, `http://127.0.0.1:${sp.port}/`]
    log(`vusers: ${count} virtual users: one request each (the logins)`)
    const firstStatuses = await loginAll(count, sp.port, appPort)
    const warm = WARMUP_S > 0 ? parseWrk(await runWrkOnce(wrkBin, [...base, '-d', `${WARMUP_S}s`])) : null
    const afterWarm = await loginCounts(sp.port)
    const cpu0 = treeCpuMicros(sp.rec.pid)
    const run = parseWrk(await runWrkOnce(wrkBin, [...base, '-d', `${durationS}s`]))
    const cpu1 = treeCpuMicros(sp.rec.pid)
    const after = await loginCounts(sp.port)
    const result = {
      status: 'ok',
      users: count,
      connections,
      duration_s: run.seconds,
      requests: run.requests,
      rps: round(run.requests / run.seconds, 1),
      cpu_us_per_req: cpu0 !== null && run.requests > 0 ? round((cpu1 - cpu0) / run.requests, 1) : null,
      non2xx: run.non2xx,
      first_requests: firstStatuses,
      warmup: warm,
      users_logged_in: after.logins.profiles,
      logins: after.logins.total,
      logins_during_measurement: after.logins.total - afterWarm.logins.total,
      relogins: after.relogins.total
    }
    log(`vusers: ${result.rps} req/s, ${result.cpu_us_per_req ?? '-'} us CPU/req; ${result.users_logged_in}/${count} users logged in, ${result.logins} logins (${result.logins_during_measurement} while measuring), ${result.relogins} re-logins, ${run.non2xx} non-2xx`)
    return result
  } catch (e) {
    return { status: 'error', error: `${e.message}${sp ? '' : `\n  ${describeChild(app)}`}` }
  } finally {
    if (sp !== null) await stopSessionProxy(sp)
    await stopChild(app)
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const count = Number(process.argv[2] ?? 1000)
  const tmpRoot = makeTempDir('bench-vusers-')
  runVusers({ count, tmpRoot, durationS: Number(process.argv[3] ?? 10) })
    .then((r) => { console.log(JSON.stringify(r, null, 2)); process.exitCode = r.status === 'ok' && r.non2xx === 0 && r.users_logged_in === count && r.logins === count ? 0 : 1 })
    .finally(() => cleanup())
}
