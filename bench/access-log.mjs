// The access log's cost per line: CPU time (user + system, so the writes
// count too) of N access lines of the shape forward.ts logs, through the
// proxy's own loggers (dist/log.js), to stdout. Run with stdout redirected:
//   npm run build && node bench/access-log.mjs > /dev/null
//   node bench/access-log.mjs --unbuffered > /dev/null   (one write per line, the old destination)
// Prints the result on stderr.
import { performance } from 'node:perf_hooks'
import { pino } from 'pino'
import { createAccessLogger, createLogger, createProxiedLine, flushLogger } from '../dist/log.js'

const N = Number(process.env.ACCESS_LOG_LINES ?? 200_000)
const unbuffered = process.argv.includes('--unbuffered')
const log = unbuffered
  ? pino({ level: 'info', base: { pid: process.pid } }, pino.destination({ dest: 1, sync: false }))
  : createLogger('info', { pretty: false })
const access = createAccessLogger(log)
const proxied = createProxiedLine(access)
const target = { authority: '127.0.0.1:18080', cookieUrl: 'http://127.0.0.1:18080/some/path' }
const profile = { name: 'default' }

function line (i, started) {
  // The call in ForwardHandler.logDone, field for field.
  if (proxied !== null) proxied(i, 'GET', target.authority, target.cookieUrl, 200, Math.round((performance.now() - started) * 100) / 100, profile.name)
}

/** The same line through pino's own info() (what logDone called before createProxiedLine). */
function pinoLine (i, started) {
  access.info({ req: i, method: 'GET', host: target.authority, url: target.cookieUrl, status: 200, ms: Math.round((performance.now() - started) * 100) / 100, profile: profile.name }, 'proxied')
}

/** The machine's yardstick: the same line built with JSON.stringify alone, no logger, no write. */
let sink = 0
function yardstick (i, started) {
  sink += JSON.stringify({ level: 30, time: Date.now(), pid: process.pid, req: i, method: 'GET', host: target.authority, url: target.cookieUrl, status: 200, ms: Math.round((performance.now() - started) * 100) / 100, profile: profile.name, msg: 'proxied' }).length
}

async function round (n, fn = line) {
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  for (let i = 0; i < n; i++) {
    fn(i, t0)
    // Let the asynchronous writes complete, as they do between requests (a
    // proxy under load logs a few lines per event-loop turn).
    if ((i & 7) === 7) await new Promise((resolve) => setImmediate(resolve))
  }
  await flushLogger(log)
  const cpu = process.cpuUsage(cpu0)
  return { cpuUsPerLine: (cpu.user + cpu.system) / n, wallUsPerLine: (performance.now() - t0) * 1000 / n }
}

await round(20_000) // warm-up
const results = []
for (let r = 0; r < 5; r++) results.push(await round(N))
results.sort((a, b) => a.cpuUsPerLine - b.cpuUsPerLine)
const median = results[2]
const viaPino = []
if (!unbuffered) {
  for (let r = 0; r < 5; r++) viaPino.push(await round(N, pinoLine))
  viaPino.sort((a, b) => a.cpuUsPerLine - b.cpuUsPerLine)
}
const yard = []
for (let r = 0; r < 5; r++) yard.push(await round(N, yardstick))
yard.sort((a, b) => a.cpuUsPerLine - b.cpuUsPerLine)
process.stderr.write(`yardstick (JSON.stringify of the same line, no logger, no write): ${yard[2].cpuUsPerLine.toFixed(2)} us CPU per line${sink < 0 ? '' : ''}\n`)
process.stderr.write(`access log (${unbuffered ? 'unbuffered, one write per line' : 'buffered destination'}), ${N} lines x 5 rounds, median: ${median.cpuUsPerLine.toFixed(2)} us CPU per line (${median.wallUsPerLine.toFixed(2)} us wall)\n`)
if (viaPino.length > 0) process.stderr.write(`the same line through pino's info(), median: ${viaPino[2].cpuUsPerLine.toFixed(2)} us CPU per line\n`)
