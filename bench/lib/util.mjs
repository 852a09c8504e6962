// Small helpers shared by the harness modules.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'

const ENV = process.env
export const raceTimeout = (ms, value) => sleep(ms, value, { ref: false })
export { sleep }

export function which (cmd) {
  const dirs = [...(ENV.PATH ?? '').split(':'), '/usr/local/sbin', '/usr/sbin', '/sbin']
  for (const d of dirs) {
    if (!d) continue
    const p = path.join(d, cmd)
    try {
      fs.accessSync(p, fs.constants.X_OK)
      if (fs.statSync(p).isFile()) return p
    } catch {
      /* next */
    }
  }
  return null
}

export function versionOf (bin, args) {
  if (!bin) return null
  const r = spawnSync(bin, args, { encoding: 'utf8', timeout: 15000 })
  const out = `${r.stdout ?? ''}\n${r.stderr ?? ''}`.split('\n').map((s) => s.trim()).filter(Boolean)
  return out[0] ?? null
}

export function freePort () {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.unref()
    s.on('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {net.AddressInfo} */ (s.address())
      s.close(() => resolve(port))
    })
  })
}

/**
 * One HTTP GET. With `proxyPort`, the request goes to the proxy in absolute
 * form (GET http://127.0.0.1:UP/path HTTP/1.1), like curl -x does.
 */
export function httpGet ({ port, upPort, urlPath, proxyPort, headers = {}, agent = false, timeoutMs = 5000 }) {
  return new Promise((resolve, reject) => {
    const viaProxy = proxyPort !== undefined
    const req = http.request(
      {
        host: '127.0.0.1',
        port: viaProxy ? proxyPort : port ?? upPort,
        path: viaProxy ? `http://127.0.0.1:${upPort}${urlPath}` : urlPath,
        method: 'GET',
        headers: { host: `127.0.0.1:${upPort ?? port}`, ...headers },
        agent,
      },
      (res) => {
        const chunks = []
        res.on('data', (c) => chunks.push(c))
        res.on('end', () =>
          resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') })
        )
        res.on('error', reject)
      }
    )
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)))
    req.on('error', reject)
    req.end()
  })
}

export async function waitUntil (fn, { timeoutMs, intervalMs = 20, what, abortIf }) {
  const deadline = performance.now() + timeoutMs
  let lastErr
  while (performance.now() < deadline) {
    const reason = abortIf?.()
    if (reason) throw new Error(`${what}: ${reason}`)
    try {
      const v = await fn()
      if (v) return v
    } catch (e) {
      lastErr = e
    }
    await sleep(intervalMs)
  }
  throw new Error(`${what}: timed out after ${timeoutMs} ms${lastErr ? ` (last error: ${lastErr.message})` : ''}`)
}

export const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  if (!s.length) return null
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}
export const round = (x, d = 2) => (x === null || x === undefined || !Number.isFinite(x) ? null : Number(x.toFixed(d)))
