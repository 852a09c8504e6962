/**
 * Knowing that the server session is gone. Any configured signal means
 * "logged out": a status code, a redirect to the login page, a body or header
 * marker (for login pages served with 200, as Tomcat FORM login does), or the
 * session cookie being deleted.
 */
import type { LoggedOutConfig } from '../../config/autopilot-schema.js'
import { parseDate } from 'tough-cookie'
import { headerValue } from './values.js'

export interface LoggedOutSignal {
  signal: 'status' | 'redirect' | 'body' | 'header' | 'cookie-deleted'
  detail: string
}

/**
 * A redirect to a path ending in /login (any query but ?logout: a client's
 * own logout lands there and must not trigger a login). Anchored on the path,
 * so `/home?next=/login` is not a signal.
 */
export const LOGIN_REDIRECT = '^[^?#]*/login/?(\\?(?!logout)[^#]*)?$'

/** Used when a rule has a login but says nothing about signals. */
export const DEFAULT_LOGGED_OUT: LoggedOutConfig = { status: [401], redirect: LOGIN_REDIRECT }

export class LoggedOutDetector {
  private readonly status: ReadonlySet<number>
  private readonly redirect: RegExp | null
  private readonly body: RegExp | null
  private readonly header: { name: string, pattern: RegExp } | null
  private readonly cookieCleared: string | null

  constructor (config: LoggedOutConfig) {
    this.status = new Set(config.status ?? [])
    this.redirect = config.redirect !== undefined ? new RegExp(config.redirect) : null
    this.body = config.body !== undefined ? new RegExp(config.body) : null
    this.header = config.header !== undefined ? { name: config.header.name, pattern: new RegExp(config.header.pattern ?? '') } : null
    this.cookieCleared = config.cookieCleared ?? null
  }

  /** Whether deciding needs the body: only a text response that could be a login page. */
  needsBody (status: number, contentType: string): boolean {
    return this.body !== null && status >= 200 && status < 300 && /^text\/|html|xml/i.test(contentType)
  }

  /** Signals visible in the head of the response. */
  checkHead (status: number, headers: readonly string[], setCookies: readonly string[] | null): LoggedOutSignal | null {
    if (this.status.has(status)) return { signal: 'status', detail: `status ${status}` }
    if (this.redirect !== null && status >= 300 && status < 400) {
      const location = headerValue(headers, 'location')
      if (location !== undefined) {
        const path = location.replace(/^[a-z]+:\/\/[^/]*/i, '')
        if (this.redirect.test(path)) return { signal: 'redirect', detail: `redirect to ${location}` }
      }
    }
    if (this.header !== null) {
      const v = headerValue(headers, this.header.name)
      if (v !== undefined && this.header.pattern.test(v)) return { signal: 'header', detail: `${this.header.name}: ${v}` }
    }
    if (this.cookieCleared !== null && setCookies !== null) {
      const prefix = this.cookieCleared + '='
      for (const line of setCookies) {
        if (!line.startsWith(prefix)) continue
        const rest = line.slice(prefix.length)
        const value = rest.split(';', 1)[0]!.trim()
        const expires = /(?:^|;)\s*expires\s*=\s*([^;]*)/i.exec(rest)?.[1]
        const expiry = expires !== undefined ? parseDate(expires.trim()) : undefined
        if (value === '' || /max-age\s*=\s*(0|-\d+)/i.test(rest) || (expiry !== undefined && expiry.getTime() <= Date.now())) {
          return { signal: 'cookie-deleted', detail: `${this.cookieCleared} deleted` }
        }
      }
    }
    return null
  }

  checkBody (body: string): LoggedOutSignal | null {
    if (this.body !== null && this.body.test(body)) return { signal: 'body', detail: `body matches /${this.body.source}/` }
    return null
  }
}
