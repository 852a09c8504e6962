/**
 * The autopilot's login, run by the managed path (a logged-out answer) and by the
 * admin API (on-demand login); both import it from here, downward.
 */
import type { ProxyDeps } from '../contracts/proxy-deps.js'
import { SessionProxyError } from '../errors.js'
import { noLoginHere, type HostAutopilot } from '../session/autopilot/host-autopilot.js'
import { LoginFailedError, toStepResponse } from '../session/autopilot/login-flow.js'
import type { Profile } from '../session/profiles.js'
import { allocateExchangeId } from './exchange-id.js'
import { sendWithSession } from './session-client.js'
import { underLoginLock } from '../session/store/login-lock.js'
import { parseTarget, type Target } from './target.js'

export function jarCookieReader (profile: Profile, target: Target): (name: string) => string | undefined {
  let cookies: Map<string, string> | null = null
  return (name) => {
    cookies ??= new Map(profile.jar.jar.getCookiesSync(target.cookieUrl).map((c) => [c.key, c.value]))
    return cookies.get(name)
  }
}

export function logRejected (deps: ProxyDeps, profile: Profile, host: string, requestId: number, rejected: Array<{ name: string, source: string, reason: string }>): void {
  for (const r of rejected) {
    deps.log.warn({ profile: profile.name, host, req: requestId, name: r.name, source: r.source, reason: r.reason }, 'autopilot refused a captured value: it cannot be sent in a header (not kept)')
  }
}

/**
 * Runs (or joins) the login of `pilot` for `profile` at the login origin of
 * `target`, with events. Used by the managed path and by the admin API's
 * on-demand login. `generation` null: whatever the current one is (a login
 * that is not a reaction to a request).
 */
export async function runLogin (deps: ProxyDeps, profile: Profile, pilot: HostAutopilot, target: Target, requestId: number | null, generation: number | null, trigger: string, ignoreBackoff = false): Promise<{ ran: boolean }> {
  const flow = pilot.login
  if (flow === null) throw new SessionProxyError('SP_NO_LOGIN', 404, `profile "${profile.name}" has no login configured for ${target.authority}`)
  const here = pilot.at(target)
  const login = here.login
  if (login === null) throw noLoginHere(pilot, here.origin)
  // A re-login replaces a session this process had; the first login of a
  // profile (also when a logged-out answer triggered it) is not one.
  const relogin = login.generation > 0
  return await login.ensureLoggedIn(generation ?? login.generation, ignoreBackoff, async () => {
    const started = Date.now()
    const id = requestId ?? allocateExchangeId()
    const url = `${target.scheme}://${target.authority}${target.path}`
    deps.events.record(profile.name, { type: 'login.started', requestId, url, flow: flow.name, trigger, relogin })
    pilot.clearSessionHeadersFor(login.origin)
    const limits = { timeoutMs: pilot.limits.loginStepTimeoutMs, maxBodyBytes: pilot.limits.loginMaxBodyBytes }
    try {
      // Shared store (Redis): one proxy logs in, the others wait and use its cookies (store/login-lock.ts).
      const result = await underLoginLock(deps.profiles.loginLock, profile, login.origin, async () => await flow.run(
        here.baseUrl,
        `${target.scheme}://${target.authority}${target.path}`,
        async (req) => {
          const session = pilot.sessionAt(parseTarget(req.url))
          const r = await sendWithSession(deps, profile, { method: req.method, url: req.url, headers: req.headers, body: req.body }, id, session.sessionHeaders, { limits })
          logRejected(deps, profile, r.target.authority, id, session.captureSessionHeaders(r.headers))
          return toStepResponse(r.status, r.headers, r.setCookies, r.body)
        },
        jarCookieReader(profile, target),
        login.origin
      ), () => ({ steps: 0, token: login.loginToken }))
      deps.events.record(profile.name, { type: 'login.succeeded', requestId, url, flow: flow.name, steps: result.steps, durationMs: Date.now() - started, relogin })
      deps.log.info({ profile: profile.name, host: target.authority, flow: flow.name, ms: Date.now() - started }, 'logged in')
      return result
    } catch (err) {
      const e = err instanceof LoginFailedError ? err : new LoginFailedError(flow.name, 'run', (err as Error).message)
      deps.events.record(profile.name, { type: 'login.failed', requestId, url, flow: flow.name, steps: flow.stepCount, durationMs: Date.now() - started, relogin, error: e.message })
      deps.log.warn({ profile: profile.name, host: target.authority, flow: flow.name, code: e.code, error: e.message }, 'login failed')
      throw e
    }
  })
}
