/**
 * POST /_session/profiles/{p}/login: runs the profile's login flows now
 * (all of them, or the one for ?host=). A login already running is joined;
 * an explicit request does not wait for a failed login's back-off.
 */
import type { FastifyInstance } from 'fastify'
import { SessionProxyError } from '../errors.js'
import type { ProxyDeps } from '../contracts/proxy-deps.js'
import { runLogin } from '../proxy/login-runner.js'
import { PERSIST_FAILED_HEADER } from '../proxy/respond.js'
import { parseTarget, type Target } from '../proxy/target.js'
import { assertProfileName } from '../session/profiles.js'
import type { HostAutopilot } from '../session/autopilot/host-autopilot.js'

function targetOf (pilot: HostAutopilot): Target | null {
  if (pilot.rule.baseUrl !== undefined) return parseTarget(pilot.rule.baseUrl)
  // A pattern without a wildcard names one host: log in there.
  if (pilot.rule.match.includes('*')) return null
  return parseTarget(`http://${pilot.rule.match}/`)
}

export async function loginRoute (app: FastifyInstance, opts: { deps: ProxyDeps }): Promise<void> {
  const { deps } = opts
  app.post<{ Params: { p: string }, Querystring: { host?: string } }>('/_session/profiles/:p/login', async (req, reply) => {
    assertProfileName(req.params.p)
    const profile = deps.profiles.get(req.params.p)
    const wanted = req.query.host?.toLowerCase()
    const pilots = (profile.autopilot?.rules ?? []).filter((p) => p.login !== null)
    const results: Array<Record<string, unknown>> = []
    for (const pilot of pilots) {
      const target = targetOf(pilot)
      if (target === null) {
        if (wanted !== undefined && pilot.rule.match === wanted) throw new SessionProxyError('SP_LOGIN_NO_BASE_URL', 400, `the login rule for ${pilot.rule.match} matches many hosts: give it a baseUrl to log in on demand`)
        continue
      }
      if (wanted !== undefined && target.authority !== wanted && target.host !== wanted) continue
      const started = Date.now()
      await runLogin(deps, profile, pilot, target, null, null, 'admin', true)
      results.push({ host: target.authority, flow: pilot.login!.name, ok: true, durationMs: Date.now() - started })
    }
    if (results.length === 0) {
      throw new SessionProxyError('SP_NO_LOGIN', 404, `profile "${profile.name}" has no login flow${wanted !== undefined ? ` for ${wanted}` : ''} (configure profiles.${profile.name}.autopilot[].login)`)
    }
    if (profile.pendingWrite !== null) await profile.pendingWrite
    if (profile.persistError !== null) reply.header(PERSIST_FAILED_HEADER, 'failed')
    return { profile: profile.name, logins: results }
  })
}
