/**
 * Which profile a proxied request belongs to: the username of
 * Proxy-Authorization (curl -x http://alice@host:port), else the
 * X-Session-Profile header, else "default".
 */
import { BadRequestError, ProxyAuthRequiredError } from '../errors.js'

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
