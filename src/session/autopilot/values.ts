/**
 * Reading a value (a CSRF token, a login token) out of a response: a header,
 * a cookie, an HTML hidden input or <meta>, or a JSON field. HTML is scanned
 * with tolerant regular expressions, not a DOM: login pages are small and the
 * attributes can come in any order.
 */
import type { ValueSource } from '../../config/autopilot-schema.js'

export interface ResponseView {
  /** Flat name/value list. */
  headers: readonly string[]
  /** Cookies the response set (name to value); from Set-Cookie lines. */
  setCookies: ReadonlyMap<string, string>
  /** The body as text when it was read (small text responses), else null. */
  body: string | null
  contentType: string
}

export function headerValue (headers: readonly string[], name: string): string | undefined {
  const lower = name.toLowerCase()
  for (let i = 0; i < headers.length; i += 2) if (headers[i]!.toLowerCase() === lower) return headers[i + 1]
  return undefined
}

export function cookiesFromSetCookie (lines: readonly string[] | null): Map<string, string> {
  const out = new Map<string, string>()
  for (const line of lines ?? []) {
    const semi = line.indexOf(';')
    const pair = semi === -1 ? line : line.slice(0, semi)
    const eq = pair.indexOf('=')
    if (eq > 0) out.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim())
  }
  return out
}

function decodeEntities (s: string): string {
  return s.replace(/&(#x[0-9a-f]+|#\d+|amp|lt|gt|quot|apos|#39);/gi, (_m, e: string) => {
    const lower = e.toLowerCase()
    if (lower.startsWith('#x')) return String.fromCodePoint(parseInt(lower.slice(2), 16))
    if (lower.startsWith('#')) return String.fromCodePoint(parseInt(lower.slice(1), 10))
    return ({ amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" } as Record<string, string>)[lower] ?? ''
  })
}

function attr (tag: string, name: string): string | undefined {
  const m = new RegExp(`\\s${name}\\s*=\\s*(?:"([^"]*)"|'([^']*)'|([^\\s>]+))`, 'i').exec(tag)
  if (m === null) return undefined
  return decodeEntities(m[1] ?? m[2] ?? m[3] ?? '')
}

/** The value of the first `<input name=NAME>` in the page. */
export function htmlInput (html: string, name: string): string | undefined {
  for (const m of html.matchAll(/<input\b[^>]*>/gi)) {
    if (attr(m[0], 'name') === name) return attr(m[0], 'value')
  }
  return undefined
}

/** The content of `<meta name=NAME>`. */
export function htmlMeta (html: string, name: string): string | undefined {
  for (const m of html.matchAll(/<meta\b[^>]*>/gi)) {
    if (attr(m[0], 'name') === name) return attr(m[0], 'content')
  }
  return undefined
}

/** A field of a JSON body by dotted path (`data.token`, `tokens.0`). */
export function jsonField (body: string, path: string): string | undefined {
  let value: unknown
  try { value = JSON.parse(body) } catch { return undefined }
  for (const key of path.split('.')) {
    if (value === null || typeof value !== 'object') return undefined
    value = (value as Record<string, unknown>)[key]
  }
  return typeof value === 'string' || typeof value === 'number' ? String(value) : undefined
}

export function describeSource (source: ValueSource): string {
  if ('cookie' in source) return `cookie:${source.cookie}`
  if ('header' in source) return `header:${source.header}`
  if ('json' in source) return `json:${source.json}`
  return source.html.input !== undefined ? `html:input[name=${source.html.input}]` : `html:meta[name=${source.html.meta ?? ''}]`
}

/** Whether reading this source needs the response body. */
export function needsBody (source: ValueSource): 'html' | 'json' | null {
  if ('html' in source) return 'html'
  if ('json' in source) return 'json'
  return null
}

/**
 * Reads `source` from a response. `jarCookie` looks a cookie up in the jar
 * (cookie sources are read from the jar, so a cookie set earlier counts too).
 */
export function readValue (source: ValueSource, response: ResponseView | null, jarCookie: (name: string) => string | undefined): string | undefined {
  if ('cookie' in source) return response?.setCookies.get(source.cookie) ?? jarCookie(source.cookie)
  if (response === null) return undefined
  if ('header' in source) return headerValue(response.headers, source.header)
  if (response.body === null) return undefined
  if ('json' in source) return jsonField(response.body, source.json)
  if (source.html.input !== undefined) return htmlInput(response.body, source.html.input)
  return htmlMeta(response.body, source.html.meta ?? '')
}

/** The longest token or session-header value the autopilot keeps. */
export const MAX_CAPTURED_VALUE = 16 * 1024

/**
 * Why `value` cannot go out in an HTTP header, or null when it can: Node and
 * undici send header values as latin1 and refuse CR, LF, NUL and other
 * control characters (tab aside). A value the autopilot captures is checked
 * here once, when it is captured, so it never turns every later request of
 * the profile into an error.
 */
export function unsendableReason (value: string): string | null {
  // Servers refuse heads much larger (Tomcat 8 KiB, nginx 8-32 KiB): a value
  // this long would only turn later requests into 431s.
  if (value.length > MAX_CAPTURED_VALUE) return `it is longer than ${MAX_CAPTURED_VALUE} characters`
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i)
    if (c === 9) continue
    if (c === 13 || c === 10) return 'it contains a line break'
    if (c < 32 || c === 127) return `it contains the control character 0x${c.toString(16).padStart(2, '0')}`
    if (c > 255) return 'it contains a character outside latin1'
  }
  return null
}
