/**
 * HAR 1.2 export (http://www.softwareishard.com/blog/har-12-spec/) of captured
 * exchanges, as browser devtools and HAR viewers open it. Fields the proxy
 * cannot know are -1, as the spec allows (headersSize, blocked/dns/connect).
 * Custom fields start with an underscore, as the spec requires: `_requestId`
 * links an entry to the session events it caused.
 */
import { STATUS_CODES } from 'node:http'
import { brotliDecompressSync, gunzipSync, inflateSync } from 'node:zlib'
import { Cookie } from 'tough-cookie'
import type { CapturedExchange } from './capture.js'
import { REDACTED } from './redact.js'

export interface HarNameValue { name: string, value: string }

export interface HarCookie {
  name: string
  value: string
  path?: string
  domain?: string
  expires?: string
  httpOnly?: boolean
  secure?: boolean
}

export interface HarEntry {
  startedDateTime: string
  time: number
  request: {
    method: string
    url: string
    httpVersion: string
    cookies: HarCookie[]
    headers: HarNameValue[]
    queryString: HarNameValue[]
    headersSize: number
    bodySize: number
  }
  response: {
    status: number
    statusText: string
    httpVersion: string
    cookies: HarCookie[]
    headers: HarNameValue[]
    content: { size: number, compression?: number, mimeType: string, text?: string, encoding?: string, comment?: string }
    redirectURL: string
    headersSize: number
    bodySize: number
    _error?: { code: string, message: string }
  }
  cache: Record<string, never>
  timings: { blocked: number, dns: number, connect: number, ssl: number, send: number, wait: number, receive: number }
  _requestId: number
  _profile: string
  comment?: string
}

export interface Har {
  log: {
    version: '1.2'
    creator: { name: string, version: string }
    entries: HarEntry[]
    comment?: string
  }
}

const TEXTUAL = /^(text\/|application\/(json|xml|javascript|ecmascript|x-www-form-urlencoded|[a-z.+-]*\+(json|xml)))/i

function header (headers: ReadonlyArray<[string, string]>, lower: string): string | undefined {
  for (const [n, v] of headers) if (n.toLowerCase() === lower) return v
  return undefined
}

function requestCookies (headers: ReadonlyArray<[string, string]>): HarCookie[] {
  const out: HarCookie[] = []
  for (const [n, v] of headers) {
    if (n.toLowerCase() !== 'cookie') continue
    for (const part of v.split(';')) {
      const eq = part.indexOf('=')
      if (eq > 0) out.push({ name: part.slice(0, eq).trim(), value: part.slice(eq + 1).trim() })
    }
  }
  return out
}

function responseCookies (headers: ReadonlyArray<[string, string]>): HarCookie[] {
  const out: HarCookie[] = []
  for (const [n, v] of headers) {
    if (n.toLowerCase() !== 'set-cookie') continue
    const c = Cookie.parse(v, { loose: true })
    if (c === undefined) continue
    const cookie: HarCookie = { name: c.key, value: c.value, httpOnly: c.httpOnly, secure: c.secure }
    if (c.path != null) cookie.path = c.path
    if (c.domain != null) cookie.domain = c.domain
    const expiry = c.expiryTime()
    if (expiry !== undefined && Number.isFinite(expiry)) cookie.expires = new Date(expiry).toISOString()
    out.push(cookie)
  }
  return out
}

function decode (body: Buffer, coding: string | undefined, limit: number): Buffer | null {
  const c = (coding ?? 'identity').trim().toLowerCase()
  const opts = { maxOutputLength: limit }
  try {
    if (c === 'identity' || c === '') return body
    if (c === 'gzip' || c === 'x-gzip') return gunzipSync(body, opts)
    if (c === 'deflate') return inflateSync(body, opts)
    if (c === 'br') return brotliDecompressSync(body, opts)
  } catch {}
  return null
}

function content (x: CapturedExchange, mimeType: string): HarEntry['response']['content'] {
  const out: HarEntry['response']['content'] = { size: x.responseBytes, mimeType }
  if (x.body === null) return out
  if (x.bodyTruncated) {
    out.comment = `body not included: longer than the capture limit (${x.body.length} of ${x.responseBytes} bytes kept)`
    return out
  }
  const coding = header(x.responseHeaders, 'content-encoding')
  const decoded = decode(x.body, coding, Math.max(1024 * 1024, x.body.length * 20))
  if (decoded === null) {
    out.comment = `body not included: cannot decode content-encoding ${coding ?? ''}`
    return out
  }
  out.size = decoded.length
  if (decoded.length !== x.responseBytes) out.compression = decoded.length - x.responseBytes
  if (TEXTUAL.test(mimeType)) {
    out.text = decoded.toString('utf8')
  } else {
    out.text = decoded.toString('base64')
    out.encoding = 'base64'
  }
  return out
}

function queryString (url: string): HarNameValue[] {
  try {
    return [...new URL(url).searchParams].map(([name, value]) => ({ name, value }))
  } catch {
    return []
  }
}

export function toHarEntry (x: CapturedExchange): HarEntry {
  const mimeType = header(x.responseHeaders, 'content-type') ?? 'x-unknown'
  const total = Math.max(0, round(x.totalMs))
  const wait = x.waitMs < 0 ? total : Math.min(total, Math.max(0, round(x.waitMs)))
  // The exchange between the client and the proxy, as a browser's devtools would record it.
  const httpVersion = `HTTP/${x.httpVersion}`
  const entry: HarEntry = {
    startedDateTime: new Date(x.startedAt).toISOString(),
    time: total,
    request: {
      method: x.method,
      url: x.url,
      httpVersion,
      cookies: requestCookies(x.requestHeaders),
      headers: x.requestHeaders.map(([name, value]) => ({ name, value })),
      queryString: queryString(x.url),
      headersSize: -1,
      bodySize: x.requestBodySize
    },
    response: {
      status: x.status,
      statusText: STATUS_CODES[x.status] ?? '',
      httpVersion,
      cookies: responseCookies(x.responseHeaders),
      headers: x.responseHeaders.map(([name, value]) => ({ name, value })),
      content: content(x, mimeType),
      redirectURL: header(x.responseHeaders, 'location') ?? '',
      headersSize: -1,
      bodySize: x.responseBytes
    },
    cache: {},
    timings: { blocked: -1, dns: -1, connect: -1, ssl: -1, send: 0, wait, receive: round(total - wait) },
    _requestId: x.requestId,
    _profile: x.profile
  }
  if (x.error !== null) entry.response._error = x.error
  if (x.redacted) entry.comment = `cookie, set-cookie and authorization values replaced by ${REDACTED}`
  return entry
}

function round (ms: number): number {
  return Math.round(ms * 1000) / 1000
}

export function toHar (entries: readonly CapturedExchange[], version: string): Har {
  return {
    log: {
      version: '1.2',
      creator: { name: 'session-proxy', version },
      entries: entries.map(toHarEntry)
    }
  }
}
