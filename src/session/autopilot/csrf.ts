/**
 * CSRF tokens: captured from responses, injected into later unsafe requests
 * (POST, PUT, PATCH, DELETE) of the same profile and host. Presets cover
 * Spring Security 6 (hidden `_csrf` input / `<meta name="_csrf">` sent as
 * X-CSRF-TOKEN; `XSRF-TOKEN` cookie sent as X-XSRF-TOKEN) and Tomcat's
 * RestCsrfPreventionFilter (`X-CSRF-Token: Fetch` on safe requests, the nonce
 * comes back in `X-CSRF-Token`).
 */
import type { CsrfRuleConfig, ValueSource } from '../../config/autopilot-schema.js'
import { ConfigError } from '../../errors.js'
import type { DefaultHeader } from '../host-defaults.js'
import { describeSource, headerValue, htmlMeta, needsBody, readValue, unsendableReason, type ResponseView } from './values.js'

export const UNSAFE_METHODS: ReadonlySet<string> = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

/** Headers a page must not choose as its token header: framing, routing and credentials. */
const RESERVED_HEADERS: ReadonlySet<string> = new Set([
  'host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'te', 'trailer', 'expect',
  'cookie', 'authorization', 'proxy-authorization', 'proxy-connection', 'via', 'content-type'
])

/** Whether a page-supplied header name (`<meta name="_csrf_header">`) may carry a token. */
export function isTokenHeaderName (name: string): boolean {
  return /^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$/.test(name) && !RESERVED_HEADERS.has(name.toLowerCase())
}

interface TokenRule {
  source: ValueSource
  sourceName: string
  header: string | null
  form: string | null
  /** Values that are protocol words, not tokens (Tomcat's "Required"/"Fetch"). */
  ignore: ReadonlySet<string>
}

export interface CapturedToken {
  name: string
  source: string
  refreshed: boolean
  /** Set when the value was refused (it cannot be sent): why. The token is not kept. */
  rejected?: string
}

function expand (config: CsrfRuleConfig, where: string): { rules: TokenRule[], refreshPath: string | null, refreshHeaders: Array<[string, string]>, fetchOnSafe: boolean } {
  const rule = (source: ValueSource, to: { header?: string, form?: string }, ignore: string[] = []): TokenRule =>
    ({ source, sourceName: describeSource(source), header: to.header ?? null, form: to.form ?? null, ignore: new Set(ignore.map((s) => s.toLowerCase())) })
  switch (config.preset) {
    case 'spring':
      return {
        rules: [
          rule({ html: { input: '_csrf' } }, { header: 'X-CSRF-TOKEN' }),
          rule({ html: { meta: '_csrf' } }, { header: 'X-CSRF-TOKEN' }),
          rule({ cookie: 'XSRF-TOKEN' }, { header: 'X-XSRF-TOKEN' })
        ],
        refreshPath: config.refreshPath ?? '/',
        refreshHeaders: Object.entries(config.refreshHeaders ?? {}),
        fetchOnSafe: false
      }
    case 'spring-cookie':
      return { rules: [rule({ cookie: 'XSRF-TOKEN' }, { header: 'X-XSRF-TOKEN' })], refreshPath: config.refreshPath ?? '/', refreshHeaders: Object.entries(config.refreshHeaders ?? {}), fetchOnSafe: false }
    case 'tomcat':
      return {
        rules: [rule({ header: 'X-CSRF-Token' }, { header: 'X-CSRF-Token' }, ['Required', 'Fetch'])],
        refreshPath: config.refreshPath ?? null,
        refreshHeaders: Object.entries(config.refreshHeaders ?? { 'X-CSRF-Token': 'Fetch' }),
        fetchOnSafe: true
      }
    default:
      if (config.from === undefined || config.to === undefined) throw new ConfigError(`${where}: give a preset (spring, spring-cookie, tomcat) or both from and to`)
      return { rules: [rule(config.from, config.to)], refreshPath: config.refreshPath ?? null, refreshHeaders: Object.entries(config.refreshHeaders ?? {}), fetchOnSafe: false }
  }
}

export class CsrfRules {
  private readonly rules: TokenRule[] = []
  refreshPath: string | null = null
  readonly refreshHeaders: Array<[string, string]> = []
  private readonly fetchHeaders: DefaultHeader[] = []
  /** Token values by rule index, for sources that are not cookies. */
  private readonly tokens = new Map<number, { value: string, header: string | null, seq: number }>()
  private seq = 0
  /** The last value seen of cookie sources (the token itself lives in the jar). */
  private readonly cookieSeen = new Map<number, string>()
  readonly bodyKinds = new Set<'html' | 'json'>()

  constructor (configs: CsrfRuleConfig[], where: string) {
    configs.forEach((c, i) => {
      const e = expand(c, `${where}[${i}]`)
      this.rules.push(...e.rules)
      if (e.refreshPath !== null && this.refreshPath === null) this.refreshPath = e.refreshPath
      this.refreshHeaders.push(...e.refreshHeaders)
      if (e.fetchOnSafe) for (const [name, value] of e.refreshHeaders) this.fetchHeaders.push([name.toLowerCase(), name, value])
    })
    for (const r of this.rules) {
      const kind = needsBody(r.source)
      if (kind !== null) this.bodyKinds.add(kind)
    }
  }

  describe (): Array<{ source: string, header: string | null, form: string | null }> {
    return this.rules.map((r) => ({ source: r.sourceName, header: r.header, form: r.form }))
  }

  /** Headers added to safe requests (Tomcat's fetch protocol). */
  get safeRequestHeaders (): readonly DefaultHeader[] {
    return this.fetchHeaders
  }

  /**
   * Reads every rule's source from a response. Returns the tokens that are
   * new or changed (cookie-sourced tokens live in the jar and are read at
   * request time, so they are reported but not stored here).
   */
  capture (response: ResponseView, jarCookie: (name: string) => string | undefined): CapturedToken[] {
    const found: CapturedToken[] = []
    this.rules.forEach((rule, i) => {
      if ('cookie' in rule.source) {
        // Compared with what this rule saw before, not with the jar: the
        // response's cookies are already stored when tokens are captured.
        const v = response.setCookies.get(rule.source.cookie)
        if (v === undefined || v === '') return
        const bad = unsendableReason(v)
        if (bad !== null) {
          found.push({ name: rule.header ?? rule.form ?? rule.source.cookie, source: rule.sourceName, refreshed: false, rejected: bad })
          return
        }
        const previous = this.cookieSeen.get(i)
        if (previous === v) return
        this.cookieSeen.set(i, v)
        found.push({ name: rule.header ?? rule.form ?? rule.source.cookie, source: rule.sourceName, refreshed: previous !== undefined })
        return
      }
      const value = readValue(rule.source, response, jarCookie)
      if (value === undefined || value === '' || rule.ignore.has(value.toLowerCase())) return
      let header = rule.header
      if ('html' in rule.source && rule.source.html.meta !== undefined && response.body !== null) {
        // The page names the header; a name that is not a header token is ignored.
        const named = htmlMeta(response.body, `${rule.source.html.meta}_header`)
        if (named !== undefined && isTokenHeaderName(named)) header = named
      }
      const bad = unsendableReason(value)
      if (bad !== null) {
        // Refused here, once: kept, it would make every unsafe request fail.
        found.push({ name: header ?? rule.form ?? '', source: rule.sourceName, refreshed: false, rejected: bad })
        return
      }
      const previous = this.tokens.get(i)
      if (previous?.value === value) return
      this.tokens.set(i, { value, header, seq: ++this.seq })
      found.push({ name: header ?? rule.form ?? '', source: rule.sourceName, refreshed: previous !== undefined })
    })
    return found
  }

  /** Whether some rule has a token to send. */
  hasToken (jarCookie: (name: string) => string | undefined): boolean {
    return this.rules.some((r, i) => 'cookie' in r.source ? jarCookie(r.source.cookie) !== undefined : this.tokens.has(i))
  }

  /** Tokens are tied to the server session: a new login clears them. */
  forget (): void {
    this.tokens.clear()
    this.cookieSeen.clear()
  }

  /** Header tokens for an unsafe request. */
  headers (jarCookie: (name: string) => string | undefined): DefaultHeader[] {
    const byName = new Map<string, { h: DefaultHeader, seq: number }>()
    this.rules.forEach((r, i) => {
      const token = 'cookie' in r.source ? { value: jarCookie(r.source.cookie), header: r.header, seq: 0 } : this.tokens.get(i)
      const header = token?.header ?? r.header
      if (header === null || token?.value === undefined) return
      const lower = header.toLowerCase()
      const prev = byName.get(lower)
      if (prev === undefined || token.seq > prev.seq) byName.set(lower, { h: [lower, header, token.value], seq: token.seq })
    })
    return [...byName.values()].map((v) => v.h)
  }

  /** Form-field tokens for an unsafe urlencoded request. */
  formFields (jarCookie: (name: string) => string | undefined): Array<[string, string]> {
    const out: Array<[string, string]> = []
    this.rules.forEach((r, i) => {
      if (r.form === null) return
      const value = 'cookie' in r.source ? jarCookie(r.source.cookie) : this.tokens.get(i)?.value
      if (value !== undefined) out.push([r.form, value])
    })
    return out
  }

  /**
   * A 403 to an unsafe request of a host with CSRF rules: Tomcat says so with
   * `X-CSRF-Token: Required`; Spring's 403 carries no marker, so any 403 to
   * an unsafe request counts (it costs one refresh and one retry at most).
   */
  isRejection (status: number, method: string, headers: readonly string[]): boolean {
    if (status !== 403 || !UNSAFE_METHODS.has(method)) return false
    const marker = headerValue(headers, 'x-csrf-token')
    return marker === undefined || marker.toLowerCase() === 'required'
  }
}
