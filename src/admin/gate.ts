/**
 * Who may use the admin API, decided on the raw request before Fastify
 * routes it. Three hostile classes, in this order:
 *
 * - DNS rebinding: a web page whose name resolves to this machine reaches
 *   the API with its own name in Host. Only the proxy's own names are
 *   answered (421 SP_ADMIN_HOST). The name is what a rebinding attacker
 *   controls; the port is not checked, because behind Docker's port
 *   publishing or a port forward the port a client used differs from the
 *   one the proxy listens on.
 * - Someone on the network: a listener beyond loopback needs the bearer
 *   token (admin.token) on every request that can read or change a session.
 * - Cross-origin requests from a browser (CSRF): a state-changing call
 *   with a foreign Origin is refused, and a POST (which a browser sends
 *   without a preflight when its Content-Type is text/plain, a form type or
 *   absent) must carry ADMIN_HEADER or the token, neither of which a foreign
 *   page can add without a preflight the proxy never answers.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { isIP } from 'node:net'
import type { Config } from '../config/schema.js'
import { ConfigError, SessionProxyError } from '../errors.js'
import { isLoopbackHost } from '../net/allowlist.js'
import { readSecret } from '../session/host-defaults.js'

/** The header that makes a POST a non-simple (preflighted) request. */
export const ADMIN_HEADER = 'x-session-proxy-admin'

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS'])

/**
 * Answered without the token even when one is required (GET/HEAD only):
 * the page and its assets (no data; the page asks for the token), the CA
 * certificate (public), and health (reduced to its status, for a Docker
 * HEALTHCHECK). Matched on the raw path: a percent-encoded variant
 * (`/_session/%68ealth`) that the router decodes to a public path needs the
 * token, never the reverse.
 */
const PUBLIC_PATHS = new Set(['/_session', '/_session/', '/_session/health', '/_session/ca.pem'])
const ASSET_PREFIX = '/_session/assets/'

/** Requests let through without credentials on a token-protected API. */
const withoutCredentials = new WeakSet<IncomingMessage>()

/** True when `req` was admitted to a public path without the token that the API otherwise needs. */
export function admittedWithoutCredentials (req: IncomingMessage): boolean {
  return withoutCredentials.has(req)
}

interface NamedHost { name: string, port: string | null }

export interface GateRules {
  /** Names (lowercase, IPv6 without brackets) that are always the proxy's own. */
  readonly names: ReadonlySet<string>
  /** admin.hosts: a name, optionally with the only port it is accepted on. */
  readonly extra: readonly NamedHost[]
  /** sha256 of the token, or null when none is configured. */
  readonly tokenDigest: Buffer | null
  /** The listener is loopback-only: no token needed unless one is configured. */
  readonly loopbackOnly: boolean
}

/** Splits a Host header or authority into a lowercase name and port; null when malformed. */
export function splitAuthority (value: string): NamedHost | null {
  const v = value.trim().toLowerCase()
  let name: string
  let rest: string
  if (v.startsWith('[')) {
    const end = v.indexOf(']')
    if (end === -1) return null
    name = v.slice(1, end)
    if (isIP(name) !== 6) return null
    rest = v.slice(end + 1)
  } else {
    const colon = v.indexOf(':')
    name = colon === -1 ? v : v.slice(0, colon)
    rest = colon === -1 ? '' : v.slice(colon)
  }
  if (name === '' || /[^a-z0-9.\-_:]/.test(name)) return null
  if (rest === '') return { name, port: null }
  if (!/^:\d{1,5}$/.test(rest) || Number(rest.slice(1)) > 65535) return null
  return { name, port: String(Number(rest.slice(1))) }
}

/** A socket address as a Host name: no IPv4-mapped prefix, no zone. */
function addressName (address: string): string {
  let a = address.toLowerCase().replace(/%.*$/, '')
  if (a.startsWith('::ffff:') && isIP(a.slice(7)) === 4) a = a.slice(7)
  return a
}

const WILDCARDS = new Set(['', '0.0.0.0', '::', '[::]'])

export function compileGateRules (config: Config, env: NodeJS.ProcessEnv = process.env): GateRules {
  const names = new Set(['localhost', '127.0.0.1', '::1'])
  if (!WILDCARDS.has(config.host)) names.add(addressName(config.host.replace(/^\[|\]$/g, '')))
  const extra = config.admin.hosts.map((entry, i) => {
    const parsed = splitAuthority(entry)
    if (parsed === null) throw new ConfigError(`admin.hosts[${i}]: "${entry}" is not a host name or host:port`)
    return parsed
  })
  let tokenDigest: Buffer | null = null
  if (config.admin.token !== null) {
    const token = readSecret(config.admin.token, 'admin.token', env)
    if (token === '') throw new ConfigError('admin.token is empty')
    tokenDigest = digest(token)
  }
  return { names, extra, tokenDigest, loopbackOnly: isLoopbackHost(config.host) }
}

function digest (s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest()
}

function isOwnName (rules: GateRules, host: NamedHost, localAddress: string | undefined): boolean {
  if (rules.names.has(host.name)) return true
  if (localAddress !== undefined && addressName(localAddress) === host.name) return true
  return rules.extra.some((e) => e.name === host.name && (e.port === null || e.port === host.port))
}

function bearerMatches (rules: GateRules, header: string | undefined): boolean {
  if (rules.tokenDigest === null || header === undefined) return false
  const m = /^bearer[ \t]+(\S+)[ \t]*$/i.exec(header)
  if (m === null) return false
  return timingSafeEqual(digest(m[1]!), rules.tokenDigest)
}

function pathOf (url: string): string {
  const q = url.indexOf('?')
  return q === -1 ? url : url.slice(0, q)
}

function isPublic (method: string, url: string): boolean {
  if (method !== 'GET' && method !== 'HEAD') return false
  const path = pathOf(url)
  return PUBLIC_PATHS.has(path) || (path.startsWith(ASSET_PREFIX) && !path.slice(ASSET_PREFIX.length).includes('/'))
}

/**
 * Whether `origin` is the proxy's own: the same scheme-less authority the
 * request was sent to (a browser derives Origin and Host from one URL), or
 * one of admin.hosts (a TLS-terminating front that rewrites Host).
 */
function isOwnOrigin (rules: GateRules, origin: string, host: NamedHost | null, listenPort: number | undefined): boolean {
  let u: URL
  try {
    u = new URL(origin)
  } catch {
    return false
  }
  if ((u.protocol !== 'http:' && u.protocol !== 'https:') || u.origin === 'null') return false
  const name = u.hostname.replace(/^\[|\]$/g, '').toLowerCase()
  const port = u.port !== '' ? u.port : u.protocol === 'https:' ? '443' : '80'
  if (rules.extra.some((e) => e.name === name && (e.port === null || e.port === port))) return true
  if (host !== null) return host.name === name && (host.port ?? (u.protocol === 'https:' ? '443' : '80')) === port
  return rules.names.has(name) && String(listenPort) === port
}

/** Returns the refusal for `req`, or null to let it through. */
export function checkAdminRequest (rules: GateRules, req: IncomingMessage): SessionProxyError | null {
  const method = req.method ?? 'GET'
  const hostHeader = req.headers.host
  let host: NamedHost | null = null
  if (hostHeader !== undefined) {
    host = splitAuthority(hostHeader)
    if (host === null || !isOwnName(rules, host, req.socket.localAddress)) {
      return new SessionProxyError('SP_ADMIN_HOST', 421, `the admin API answers only for this proxy's own names (localhost, 127.0.0.1, [::1], its listen address, admin.hosts), not for Host "${hostHeader.slice(0, 100)}". If that name is really this proxy, add it to admin.hosts.`)
    }
  }
  try {
    decodeURIComponent(pathOf(req.url ?? '/'))
  } catch {
    return new SessionProxyError('SP_BAD_URL', 400, 'the request path has an invalid percent-encoding')
  }
  const tokenOk = bearerMatches(rules, req.headers.authorization)
  const tokenNeeded = rules.tokenDigest !== null || !rules.loopbackOnly
  if (tokenNeeded && !tokenOk) {
    if (isPublic(method, req.url ?? '')) {
      withoutCredentials.add(req)
    } else if (rules.tokenDigest === null) {
      return new SessionProxyError('SP_ADMIN_TOKEN_UNSET', 403, 'the proxy listens beyond loopback, so its admin API needs a token, and none is configured: set admin.token (a secret: { value }, { env: NAME } or { file: PATH }) and send "Authorization: Bearer <token>"')
    } else {
      return new SessionProxyError('SP_ADMIN_AUTH_REQUIRED', 401, req.headers.authorization === undefined
        ? 'the admin API needs "Authorization: Bearer <token>" (the token configured as admin.token)'
        : 'the admin token is wrong: send "Authorization: Bearer <token>" with the token configured as admin.token')
    }
  }
  if (!SAFE_METHODS.has(method)) {
    const origin = req.headers.origin
    if (origin !== undefined && !isOwnOrigin(rules, origin, host, req.socket.localPort)) {
      return new SessionProxyError('SP_ADMIN_ORIGIN', 403, `a ${method} to the admin API from a web page of another origin (${origin.slice(0, 100)}) is refused: only the proxy's own page may change sessions`)
    }
    if (method === 'POST' && !tokenOk && req.headers[ADMIN_HEADER] === undefined) {
      return new SessionProxyError('SP_ADMIN_HEADER_REQUIRED', 403, `a POST to the admin API must carry the header "${ADMIN_HEADER}: 1" (or the bearer token), so that no web page can send it without the proxy's consent`)
    }
  }
  return null
}
