/**
 * Explain: for a URL and method, which cookies of a profile the proxy would
 * send and, for each one it would not, the exact reason; plus the default
 * headers, auth and CSRF rules that apply.
 *
 * The checks mirror tough-cookie 6's getCookies (matchingCookie) in its
 * order: domain (host-only or domain-match), path, Secure (https only, even
 * for localhost: the jar sets allowSecureOnLocal false), SameSite, expiry.
 * It reads the store directly instead of calling getCookies, which would
 * delete expired cookies and touch lastAccessed: explaining must not change
 * the session.
 *
 * SameSite: the proxy's own requests carry no site context, so SameSite never
 * stops a cookie the proxy sends (it acts like a same-site request). `site`
 * lets a user ask what a browser would do for a cross-site request.
 */
import { canonicalDomain, cookieCompare, domainMatch, pathMatch, type Cookie } from 'tough-cookie'
import { BadRequestError } from '../errors.js'
import type { Profile } from '../session/profiles.js'

export type SiteContext = 'same-site' | 'cross-site' | 'cross-site-navigation'
export const SITE_CONTEXTS: readonly SiteContext[] = ['same-site', 'cross-site', 'cross-site-navigation']

export type NotSentReason = 'domain' | 'host-only' | 'path' | 'secure' | 'same-site' | 'expired'

export interface Reason {
  code: NotSentReason
  message: string
}

export interface CookieVerdict {
  name: string
  domain: string
  path: string
  hostOnly: boolean
  secure: boolean
  httpOnly: boolean
  sameSite: string | null
  expires: string | null
  sent: boolean
  /** Empty when sent. When the domain does not match, only that reason: the other checks are moot. */
  reasons: Reason[]
}

/** A default header, auth or CSRF rule and whether it applies to the request. */
export interface ExplainRule {
  name: string
  /** Secrets are shown redacted. */
  value: string
  /** Where it is configured, e.g. `profiles.alice.hosts[0]`. */
  rule: string
  match: string
  applies: boolean
  note?: string
}

export interface ExplainTarget {
  url: URL
  method: string
  site: SiteContext
  scheme: 'http' | 'https'
  /** Canonical host as the jar matches it. */
  host: string
  port: number
  path: string
}

/**
 * Adds rules to a section of the result: the CSRF support (issue 4) plugs in
 * here without explain knowing how tokens are found.
 */
export interface ExplainContributor {
  section: 'headers' | 'auth' | 'csrf'
  rules: (profile: Profile, target: ExplainTarget) => ExplainRule[]
}

export interface ExplainResult {
  profile: string
  url: string
  method: string
  site: SiteContext
  cookies: CookieVerdict[]
  /** The Cookie header the proxy would add (a client's own cookie of the same name wins over it). */
  cookieHeader: string
  headers: ExplainRule[]
  auth: ExplainRule[]
  csrf: ExplainRule[]
  notes: string[]
}

export function parseExplainTarget (url: string, method: string, site: string): ExplainTarget {
  let u: URL
  try {
    u = new URL(url)
  } catch {
    throw new BadRequestError('SP_EXPLAIN_BAD_URL', `"${url.slice(0, 200)}" is not an absolute URL`)
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new BadRequestError('SP_EXPLAIN_BAD_URL', `only http and https URLs can be explained, not ${u.protocol}`)
  if (!/^[A-Za-z]{1,20}$/.test(method)) throw new BadRequestError('SP_EXPLAIN_BAD_METHOD', `"${method.slice(0, 40)}" is not an HTTP method`)
  if (!(SITE_CONTEXTS as readonly string[]).includes(site)) throw new BadRequestError('SP_EXPLAIN_BAD_SITE', `site must be one of ${SITE_CONTEXTS.join(', ')}`)
  const scheme = u.protocol === 'https:' ? 'https' : 'http'
  return {
    url: u,
    method: method.toUpperCase(),
    site: site as SiteContext,
    scheme,
    host: canonicalDomain(u.hostname) ?? u.hostname,
    port: u.port === '' ? (scheme === 'https' ? 443 : 80) : Number(u.port),
    path: u.pathname === '' ? '/' : u.pathname
  }
}

function sameSiteReason (c: Cookie, t: ExplainTarget): Reason | null {
  if (t.site === 'same-site') return null
  const level = (c.sameSite ?? 'none').toLowerCase()
  if (level === 'strict') return { code: 'same-site', message: `SameSite=Strict: never sent on a ${t.site} request` }
  if (level === 'lax') {
    const safe = t.method === 'GET' || t.method === 'HEAD'
    if (t.site === 'cross-site') return { code: 'same-site', message: 'SameSite=Lax: not sent on a cross-site subresource request (only on a top-level GET/HEAD navigation)' }
    if (!safe) return { code: 'same-site', message: `SameSite=Lax: sent on a cross-site navigation only with GET or HEAD, not ${t.method}` }
  }
  return null
}

export function judgeCookie (c: Cookie, t: ExplainTarget, now: number): CookieVerdict {
  const reasons: Reason[] = []
  const domain = c.domain ?? ''
  if (c.hostOnly === true) {
    if (domain !== t.host) {
      reasons.push(domainMatch(t.host, domain, false) === true
        ? { code: 'host-only', message: `host-only cookie of ${domain} (set without a Domain attribute), so not sent to its subdomain ${t.host}` }
        : { code: 'domain', message: `host-only cookie of ${domain}, and the request goes to ${t.host}` })
    }
  } else if (domainMatch(t.host, domain, false) !== true) {
    reasons.push({ code: 'domain', message: `Domain=${domain} does not domain-match ${t.host}` })
  }
  if (reasons.length === 0) {
    if (typeof c.path === 'string' && !pathMatch(t.path, c.path)) reasons.push({ code: 'path', message: `Path=${c.path} does not path-match ${t.path}` })
    if (c.secure && t.scheme !== 'https') reasons.push({ code: 'secure', message: 'Secure cookie: sent only over https, and this request is http (also for localhost)' })
    const ss = sameSiteReason(c, t)
    if (ss !== null) reasons.push(ss)
    const expiry = c.expiryTime()
    if (expiry !== undefined && expiry <= now) reasons.push({ code: 'expired', message: `expired at ${new Date(expiry).toISOString()} (${Math.round((now - expiry) / 1000)} s ago); the jar drops it on its next lookup` })
  }
  const expiry = c.expiryTime()
  return {
    name: c.key,
    domain,
    path: c.path ?? '/',
    hostOnly: c.hostOnly === true,
    secure: c.secure,
    httpOnly: c.httpOnly,
    sameSite: c.sameSite ?? null,
    expires: expiry === undefined || !Number.isFinite(expiry) ? null : new Date(expiry).toISOString(),
    sent: reasons.length === 0,
    reasons
  }
}

export function explain (profile: Profile, t: ExplainTarget, contributors: readonly ExplainContributor[] = []): ExplainResult {
  const now = Date.now()
  const all = profile.jar.cookies()
  const verdicts = all.map((c) => judgeCookie(c, t, now))
  const sent = all.filter((_c, i) => verdicts[i]!.sent).sort(cookieCompare)
  const hostKey = t.url.hostname.toLowerCase()
  const headers: ExplainRule[] = []
  const auth: ExplainRule[] = []
  for (const d of profile.defaults.describe(hostKey, t.port)) {
    const rule: ExplainRule = {
      name: d.name,
      value: d.value,
      rule: d.rule,
      match: d.match,
      applies: d.overriddenBy === null,
      ...(d.overriddenBy !== null ? { note: `overridden by ${d.overriddenBy}` } : d.override ? { note: "replaces the client's own value (override: true)" } : {})
    }
    ;(d.auth ? auth : headers).push(rule)
  }
  const result: ExplainResult = {
    profile: profile.name,
    url: t.url.href,
    method: t.method,
    site: t.site,
    cookies: verdicts,
    cookieHeader: sent.map((c) => c.cookieString()).join('; '),
    headers,
    auth,
    csrf: [],
    notes: [
      'Default headers and auth are added only when the client did not send that header itself, unless the header is marked override: true.',
      "A cookie the client sends itself wins over the jar's cookie of the same name.",
      t.site === 'same-site'
        ? 'SameSite does not restrict the proxy: it has no cross-site context, so it sends cookies as for a same-site request. Ask with site=cross-site or site=cross-site-navigation to see what a browser would do.'
        : `SameSite evaluated for a ${t.site} request, as a browser would; the proxy itself always behaves as same-site.`
    ]
  }
  for (const c of contributors) result[c.section].push(...c.rules(profile, t))
  return result
}
