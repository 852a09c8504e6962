/**
 * Redaction for captured headers: secrets are replaced but the shape stays
 * (cookie names, Set-Cookie attributes, the auth scheme), because the shape
 * is what one debugs a session with.
 */
export const REDACTED = '<redacted>'

const SECRET_HEADERS = new Set(['cookie', 'set-cookie', 'authorization', 'proxy-authorization'])

export function isSecretHeader (lowerName: string): boolean {
  return SECRET_HEADERS.has(lowerName)
}

/** `a=1; b=2` -> `a=<redacted>; b=<redacted>` */
export function redactCookieHeader (value: string): string {
  return value.split(';').map((part) => {
    const eq = part.indexOf('=')
    return eq === -1 ? part : `${part.slice(0, eq)}=${REDACTED}`
  }).join(';')
}

/** `sid=abc; Path=/; HttpOnly` -> `sid=<redacted>; Path=/; HttpOnly` */
export function redactSetCookie (value: string): string {
  const semi = value.indexOf(';')
  const first = semi === -1 ? value : value.slice(0, semi)
  const eq = first.indexOf('=')
  const name = eq === -1 ? '' : first.slice(0, eq)
  return `${name}=${REDACTED}${semi === -1 ? '' : value.slice(semi)}`
}

/** `Basic dXNlcjpwYXNz` -> `Basic <redacted>` */
export function redactAuthorization (value: string): string {
  const space = value.indexOf(' ')
  return space === -1 ? REDACTED : `${value.slice(0, space)} ${REDACTED}`
}

export function redactHeader (lowerName: string, value: string): string {
  switch (lowerName) {
    case 'cookie': return redactCookieHeader(value)
    case 'set-cookie': return redactSetCookie(value)
    case 'authorization':
    case 'proxy-authorization': return redactAuthorization(value)
    default: return value
  }
}
