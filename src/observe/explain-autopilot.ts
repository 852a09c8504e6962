/**
 * Explain sections for the session autopilot (issue 4): the login flow that
 * runs for the host (under "auth") and the CSRF rules that add tokens to
 * unsafe requests (under "csrf"), read from the profile's autopilot rule for
 * the URL's host. Token values are never shown, only whether one is known.
 */
import { UNSAFE_METHODS } from '../session/autopilot/csrf.js'
import type { ExplainContributor, ExplainRule, ExplainTarget } from './explain.js'
import type { Profile } from '../session/profiles.js'

function pilotFor (profile: Profile, t: ExplainTarget): ReturnType<NonNullable<Profile['autopilot']>['forHost']> {
  if (profile.autopilot === null) return null
  return profile.autopilot.forHost(t.url.host.toLowerCase(), t.url.hostname.toLowerCase(), t.port)
}

export const loginContributor: ExplainContributor = {
  section: 'auth',
  rules: (profile, t) => {
    const pilot = pilotFor(profile, t)
    if (pilot === null || pilot.login === null) return []
    // Read without creating state: explain only looks.
    const session = pilot.peekSession({ scheme: t.scheme, host: t.url.hostname.toLowerCase(), port: t.port })
    const loginOrigin = session?.loginOrigin ?? null
    const known = loginOrigin !== null && loginOrigin === session?.origin && pilot.loginState(loginOrigin)?.loginToken != null
    return [{
      name: 'login',
      value: `${pilot.login.name} flow${known ? ' (token held)' : ''}`,
      rule: `${pilot.where}.login`,
      match: pilot.rule.match,
      applies: true,
      note: 'runs when the session is seen logged out; the request is then replayed'
    }]
  }
}

export const csrfContributor: ExplainContributor = {
  section: 'csrf',
  rules: (profile, t) => {
    const pilot = pilotFor(profile, t)
    if (pilot === null || pilot.csrf === null) return []
    const unsafe = UNSAFE_METHODS.has(t.method)
    return pilot.csrf.describe().map((r): ExplainRule => ({
      name: r.header ?? (r.form !== null ? `form field ${r.form}` : '(none)'),
      value: `token from ${r.source}`,
      rule: `${pilot.where}.csrf`,
      match: pilot.rule.match,
      applies: unsafe,
      ...(unsafe ? {} : { note: `only on ${[...UNSAFE_METHODS].join('/')}, not ${t.method}` })
    }))
  }
}
