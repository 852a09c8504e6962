// Fills many profiles through the proxy before they are measured.
import http from 'node:http'
import { performance } from 'node:perf_hooks'
import { httpGet, round } from './util.mjs'

/**
 * n profiles named `${prefix}0` ... each get the cookies of `seedPath`, then
 * one request to `/` (so each also holds its `sid`): the measured window is
 * the steady state of warm profiles, and each profile's first cookie change
 * (a journal write per profile) shows in the seeding rate.
 */
export async function seedProfiles ({ proxyPort, upPort, n, prefix = 'p', seedPath = '/seed', cookies, concurrency = 32, deadlineMs = 600_000 }) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency })
  const deadline = performance.now() + deadlineMs
  let next = 0
  let ok = 0
  let failed = 0
  let firstError = null
  const t0 = performance.now()
  const worker = async () => {
    while (next < n && performance.now() < deadline) {
      const i = next++
      const headers = { 'x-session-profile': `${prefix}${i}` }
      try {
        const r = await httpGet({ proxyPort, upPort, urlPath: seedPath, headers, agent, timeoutMs: 10000 })
        const warm = r.status === 200 ? await httpGet({ proxyPort, upPort, urlPath: '/', headers, agent, timeoutMs: 10000 }) : r
        if (r.status === 200 && warm.status === 200) ok++
        else {
          failed++
          firstError ??= `HTTP ${r.status}`
        }
      } catch (e) {
        failed++
        firstError ??= e.message
      }
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  agent.destroy()
  const ms = performance.now() - t0
  return { profiles: n, cookies_per_profile: cookies, ok, failed, not_sent: n - ok - failed, first_error: firstError, duration_ms: round(ms, 0), profiles_per_s: round(ok / (ms / 1000), 0) }
}
