/**
 * Which profile a proxied request belongs to: the username of
 * Proxy-Authorization (curl -x http://alice@host:port), else the
 * X-Session-Profile header, else "default".
 */
import { BadRequestError, ProxyAuthRequiredError, SessionProxyError } from '../errors.js'

export const PROFILE_HEADER = 'x-session-profile'
export const DEFAULT_PROFILE = 'default'

export interface ProxyCredentials {
  username: string
  password: string
}

export function parseProxyAuthorization (value: string): ProxyCredentials {
  const space = value.indexOf(' ')
  const scheme = space === -1 ? value : value.slice(0, space)
  if (scheme.toLowerCase() !== 'basic') {
    throw new BadRequestError('SP_PROXY_AUTH_SCHEME', `Proxy-Authorization scheme "${scheme}" is not supported: use Basic (curl -x http://PROFILE@host:port or --proxy-user PROFILE:)`)
  }
  const decoded = Buffer.from(value.slice(space + 1).trim(), 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  return colon === -1
    ? { username: decoded, password: '' }
    : { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) }
}

/**
 * `users` is the proxyAuth table (username to password) or null when the
 * proxy does not require authentication.
 */
export function resolveProfileName (proxyAuthorization: string | undefined, profileHeader: string | undefined, users: ReadonlyMap<string, string> | null): string {
  if (proxyAuthorization !== undefined) {
    const creds = parseProxyAuthorization(proxyAuthorization)
    if (users !== null) {
      const expected = users.get(creds.username)
      if (expected === undefined || expected !== creds.password) throw new ProxyAuthRequiredError(`proxy authentication failed for user "${creds.username}"`)
    }
    if (creds.username !== '') return creds.username
  } else if (users !== null) {
    throw new ProxyAuthRequiredError('this proxy requires authentication: use curl -x http://USER:PASSWORD@host:port')
  }
  if (profileHeader !== undefined && profileHeader !== '') return profileHeader
  return DEFAULT_PROFILE
}

export class TunnelProfileError extends SessionProxyError {
  constructor (bound: string, named: string) {
    super('SP_TUNNEL_PROFILE', 403, `this tunnel is profile "${bound}" (named by its CONNECT or its profile port) but the request names profile "${named.slice(0, 64)}": open another tunnel for that profile`)
    this.name = 'TunnelProfileError'
  }
}

/**
 * The profile of a request inside a tunnel opened as `bound` (the CONNECT's
 * profile, or the profile port's). A tunnel is one profile: clients send
 * Proxy-Authorization only on CONNECT, so a request without one is `bound`.
 * One that carries its own is checked against proxyAuth again (407 on a
 * wrong password, as on CONNECT), and a request that names another profile,
 * by its Proxy-Authorization user or by X-Session-Profile, is refused (403)
 * rather than switched or silently sent as `bound`: the CONNECT was
 * authorised for `bound` only, and a script that believes it is bob must
 * not act as alice.
 */
export function resolveTunnelProfileName (proxyAuthorization: string | undefined, profileHeader: string | undefined, users: ReadonlyMap<string, string> | null, bound: string): string {
  if (proxyAuthorization !== undefined) {
    const creds = parseProxyAuthorization(proxyAuthorization)
    if (users !== null) {
      const expected = users.get(creds.username)
      if (expected === undefined || expected !== creds.password) throw new ProxyAuthRequiredError(`proxy authentication failed for user "${creds.username}"`)
    }
    if (creds.username !== '' && creds.username !== bound) throw new TunnelProfileError(bound, creds.username)
  }
  if (profileHeader !== undefined && profileHeader !== '' && profileHeader !== bound) throw new TunnelProfileError(bound, profileHeader)
  return bound
}
