/**
 * The Netscape cookies.txt format that curl (-b/-c) and wget
 * (--load-cookies/--save-cookies) read and write:
 *   domain  include-subdomains  path  secure  expires(epoch s, 0 = session)  name  value
 * with `#HttpOnly_` in front of the domain for HttpOnly cookies.
 */
import { Cookie } from 'tough-cookie'
import { CookiesTxtError } from '../errors.js'
import { admitCookie, cookieNameProblem, cookieValueProblem, MAX_EXPIRY_MS } from './sendable.js'

const HTTP_ONLY_PREFIX = '#HttpOnly_'

export function toCookiesTxt (cookies: Iterable<Cookie>): string {
  let out = '# Netscape HTTP Cookie File\n# Written by session-proxy; curl -b/-c and wget --load-cookies read this format.\n\n'
  for (const c of cookies) {
    const domain = (c.hostOnly === true ? '' : '.') + (c.domain ?? '')
    const expiry = c.expiryTime()
    const expires = expiry === undefined || !Number.isFinite(expiry) ? 0 : Math.max(1, Math.floor(expiry / 1000))
    out += [
      (c.httpOnly ? HTTP_ONLY_PREFIX : '') + domain,
      c.hostOnly === true ? 'FALSE' : 'TRUE',
      c.path ?? '/',
      c.secure ? 'TRUE' : 'FALSE',
      String(expires),
      c.key,
      c.value
    ].join('\t') + '\n'
  }
  return out
}

export interface ParsedCookiesTxt {
  cookies: Cookie[]
  /** Lines skipped because their cookie had already expired. */
  expired: number
}

/** Parses the whole file or throws naming every bad line; nothing is half-imported. */
export function parseCookiesTxt (text: string, now = Date.now()): ParsedCookiesTxt {
  const cookies: Cookie[] = []
  const problems: string[] = []
  let expired = 0
  // A BOM (Windows editors) would otherwise make line 1 a bad cookie line.
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/)
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!
    let httpOnly = false
    if (line.startsWith(HTTP_ONLY_PREFIX)) {
      httpOnly = true
      line = line.slice(HTTP_ONLY_PREFIX.length)
    } else if (line.trim() === '' || line.startsWith('#')) {
      continue
    }
    const f = line.split('\t')
    // curl writes 7 fields; an empty value may lose its trailing tab.
    if (f.length === 6) f.push('')
    if (f.length !== 7) {
      problems.push(`line ${i + 1}: expected 7 tab-separated fields, found ${f.length}`)
      continue
    }
    const [rawDomain, sub, path, secure, expires, name, value] = f as [string, string, string, string, string, string, string]
    const bad: string[] = []
    const domain = rawDomain.replace(/^\./, '').toLowerCase()
    if (domain === '' || !/^[a-z0-9._-]+$|^\[[0-9a-f:.]+\]$/.test(domain)) bad.push(`invalid domain "${rawDomain}"`)
    if (sub !== 'TRUE' && sub !== 'FALSE') bad.push(`include-subdomains must be TRUE or FALSE, not "${sub}"`)
    if (!path.startsWith('/')) bad.push(`path must start with "/", not "${path}"`)
    if (secure !== 'TRUE' && secure !== 'FALSE') bad.push(`secure must be TRUE or FALSE, not "${secure}"`)
    if (!/^-?\d+$/.test(expires)) bad.push(`expires must be a number of seconds, not "${expires}"`)
    // The jar's own rules (sendable.ts), so what GET cookies.txt exports
    // imports again, and nothing imported fails a request later.
    const nameProblem = cookieNameProblem(name)
    if (nameProblem !== null) bad.push(`invalid cookie name ${JSON.stringify(name.slice(0, 64))}: it ${nameProblem}`)
    const valueProblem = cookieValueProblem(value)
    if (valueProblem !== null) bad.push(`cookie value cannot be sent in a Cookie header: it ${valueProblem}`)
    if (bad.length > 0) {
      problems.push(`line ${i + 1}: ${bad.join('; ')}`)
      continue
    }
    const epoch = Number(expires)
    if (epoch > 0 && epoch * 1000 <= now) {
      expired++
      continue
    }
    const created = new Date(now)
    const cookie = new Cookie({
      key: name,
      value,
      domain,
      path,
      secure: secure === 'TRUE',
      httpOnly,
      hostOnly: sub === 'FALSE',
      // Beyond year 9999 (or beyond what a Date holds) is clamped, as for Set-Cookie.
      expires: epoch > 0 ? new Date(Math.min(epoch * 1000, MAX_EXPIRY_MS)) : 'Infinity',
      creation: created,
      lastAccessed: created
    })
    const problem = admitCookie(cookie)
    if (problem !== null) {
      problems.push(`line ${i + 1}: ${problem}`)
      continue
    }
    cookies.push(cookie)
  }
  if (problems.length > 0) {
    const shown = problems.slice(0, 10)
    if (problems.length > 10) shown.push(`… and ${problems.length - 10} more`)
    throw new CookiesTxtError(`not a valid cookies.txt file, nothing imported:\n${shown.join('\n')}`)
  }
  return { cookies, expired }
}
