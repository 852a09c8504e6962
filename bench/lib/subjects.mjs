// The things measured: session-proxy (one process per scenario), the bare
// Node reference, and the peers (squid, tinyproxy, mitmproxy stickycookie).
import fs from 'node:fs'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { describeChild, killGroup, makeTempDir, startChild, stopChild, stopping } from './children.mjs'
import { PROXY_BIN, PROXY_CONFIG, ROOT } from './settings.mjs'
import { freePort, httpGet, raceTimeout, round, sleep, waitUntil, which } from './util.mjs'

/** Waits for a `{"msg":"listening","url":...}` line on stdout. */
function listeningLine (resolveListening, t0) {
  return (line, stream) => {
    if (stream !== 'stdout' || !line.includes('listening')) return
    let url
    try {
      const obj = JSON.parse(line)
      if (obj.msg === 'listening' && typeof obj.url === 'string') url = obj.url
    } catch {
      /* not JSON */
    }
    if (!url) return
    const p = Number(new URL(url).port)
    if (p > 0) resolveListening({ port: p, ms: performance.now() - t0 })
  }
}

let spCount = 0
/** logLevel null: the proxy's own default (info, with the access log). */
export function spawnSessionProxy ({ port = 0, tmpRoot, logLevel = 'warn', config = PROXY_CONFIG }) {
  if (stopping()) throw new Error('not starting session-proxy: the run is being stopped')
  const dataDir = path.join(tmpRoot, `data-${++spCount}`)
  fs.mkdirSync(dataDir, { recursive: true })
  const args = [PROXY_BIN, '--host', '127.0.0.1', '--port', String(port), '--data-dir', dataDir]
  if (logLevel !== null) args.push('--log-level', logLevel)
  if (config) args.push('--config', config)
  let resolveListening
  const listening = new Promise((resolve) => (resolveListening = resolve))
  const t0 = performance.now()
  const rec = startChild('session-proxy', process.execPath, args, { onLine: listeningLine(resolveListening, t0) })
  return { rec, dataDir, listening, t0 }
}

async function awaitListening (sp, what) {
  const r = await Promise.race([sp.listening, sp.rec.exitPromise.then(() => 'exited'), raceTimeout(20000, 'timeout')])
  if (r === 'exited' || r === 'timeout') {
    const why = r === 'exited' ? 'exited before printing the listening line' : 'no "listening" line on stdout within 20 s'
    await stopChild(sp.rec)
    throw new Error(`${what} ${why}\n  ${describeChild(sp.rec)}`)
  }
  return { ...sp, port: r.port, listenMs: r.ms }
}

export async function startSessionProxy (tmpRoot, opts = {}) {
  return await awaitListening(spawnSessionProxy({ tmpRoot, ...opts }), 'session-proxy')
}

/** SIGTERM to the proxy process itself; reports whether it stopped cleanly. */
export async function stopSessionProxy (sp) {
  await stopChild(sp.rec, { signal: 'SIGTERM', group: false, timeoutMs: 5000 })
  killGroup(sp.rec, 'SIGKILL')
  return {
    clean: !sp.rec.killedHard && (sp.rec.code === 0 || sp.rec.signal === 'SIGTERM'),
    code: sp.rec.code,
    signal: sp.rec.signal,
    stop_ms: round(sp.rec.stopMs, 1),
  }
}

/** The bare Node reference (bench/reference/bare-proxy.mjs). */
export async function startBare () {
  let resolveListening
  const listening = new Promise((resolve) => (resolveListening = resolve))
  const t0 = performance.now()
  const rec = startChild('bare-proxy', process.execPath, [path.join(ROOT, 'bench', 'reference', 'bare-proxy.mjs'), '0'], { onLine: listeningLine(resolveListening, t0) })
  const sp = await awaitListening({ rec, listening }, 'bare-proxy')
  return { port: sp.port, rec }
}

/** Spawn -> first successful proxied response, polling in a tight loop. */
export async function measureStartup (up, tmpRoot) {
  const port = await freePort() // a fixed port, so polling can begin at spawn time
  const sp = spawnSessionProxy({ port, tmpRoot })
  let attempts = 0
  let firstOkMs = null
  let lastErr = ''
  try {
    const deadline = sp.t0 + 20000
    while (performance.now() < deadline) {
      if (sp.rec.exited) throw new Error(`session-proxy exited during start-up\n  ${describeChild(sp.rec)}`)
      attempts++
      try {
        const r = await httpGet({ proxyPort: port, upPort: up.port, urlPath: '/', timeoutMs: 2000 })
        if (r.status === 200) {
          firstOkMs = performance.now() - sp.t0
          break
        }
        lastErr = `HTTP ${r.status}`
      } catch (e) {
        lastErr = e.code ?? e.message
      }
      await sleep(1)
    }
    if (firstOkMs === null) throw new Error(`session-proxy start-up: no 200 through the proxy within 20 s (last: ${lastErr})`)
    const l = await Promise.race([sp.listening, raceTimeout(2000, null)])
    const stop = await stopSessionProxy(sp)
    return { first_response_ms: round(firstOkMs, 1), listening_line_ms: l ? round(l.ms, 1) : null, attempts, stop }
  } finally {
    if (!sp.rec.exited) await stopSessionProxy(sp)
  }
}

export async function startPeer (name, up) {
  const dir = makeTempDir(name)
  const port = await freePort()
  let rec
  let bin
  if (name === 'squid') {
    bin = which('squid')
    if (!bin) return { skipped: 'squid not installed (command -v squid failed)' }
    // squid drops privileges to its effective user when started as root: let it write its logs here
    fs.chmodSync(dir, 0o777)
    const conf = path.join(dir, 'squid.conf')
    fs.writeFileSync(
      conf,
      `# generated by bench/run.mjs (loopback only)
http_port 127.0.0.1:${port}
http_access allow all
cache deny all
cache_mem 8 MB
pid_filename ${dir}/squid.pid
cache_log ${dir}/cache.log
access_log none
cache_store_log none
logfile_rotate 0
coredump_dir ${dir}
pinger_enable off
shutdown_lifetime 1 seconds
max_filedescriptors 4096
visible_hostname session-proxy-bench
`
    )
    rec = startChild('squid', bin, ['-N', '-f', conf])
  } else if (name === 'tinyproxy') {
    bin = which('tinyproxy')
    if (!bin) return { skipped: 'tinyproxy not installed (command -v tinyproxy failed)' }
    fs.chmodSync(dir, 0o777)
    const conf = path.join(dir, 'tinyproxy.conf')
    fs.writeFileSync(
      conf,
      `# generated by bench/run.mjs (loopback only)
Port ${port}
Listen 127.0.0.1
Timeout 60
MaxClients 256
Allow 127.0.0.1
LogLevel Error
LogFile "${dir}/tinyproxy.log"
PidFile "${dir}/tinyproxy.pid"
`
    )
    rec = startChild('tinyproxy', bin, ['-d', '-c', conf])
  } else if (name === 'mitmproxy') {
    bin = which('mitmdump')
    if (!bin) return { skipped: 'mitmproxy not installed (command -v mitmdump failed)' }
    rec = startChild(
      'mitmdump',
      bin,
      [
        '--listen-host', '127.0.0.1',
        '--listen-port', String(port),
        '-q',
        '--set', 'stickycookie=.',
        '--set', `confdir=${path.join(dir, 'conf')}`,
      ],
      { env: { ...process.env, HOME: dir } }
    )
  } else {
    throw new Error(`unknown peer ${name}`)
  }
  try {
    // the "single curl through the proxy" check: must return 200
    await waitUntil(
      async () => {
        const r = await httpGet({ proxyPort: port, upPort: up.port, urlPath: '/', timeoutMs: 2000 })
        if (r.status !== 200) throw new Error(`HTTP ${r.status}`)
        return true
      },
      { timeoutMs: 30000, intervalMs: 100, what: `${name} did not return 200 through 127.0.0.1:${port}`, abortIf: () => (rec.exited ? 'it exited' : null) }
    )
  } catch (e) {
    let extra = ''
    for (const f of ['cache.log', 'tinyproxy.log']) {
      try {
        extra += `\n  ${f}: ${fs.readFileSync(path.join(dir, f), 'utf8').slice(-1500)}`
      } catch {
        /* none */
      }
    }
    await stopChild(rec)
    return { skipped: `${e.message}\n  ${describeChild(rec)}${extra}` }
  }
  return { port, rec, bin }
}
