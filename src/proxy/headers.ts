/**
 * Header rules for both directions. Hop-by-hop headers, and every header a
 * Connection header names, describe one connection and never cross the proxy
 * (RFC 9110 7.6.1). The request side then adds, in order: host defaults (the
 * client's own header wins, unless the default is marked override), the profile's cookies merged with the client's,
 * Host from the target, and Via.
 */
import { LoopDetectedError } from '../errors.js'
import type { DefaultHeader } from '../session/host-defaults.js'
import { PROFILE_HEADER } from '../session/resolve-profile.js'

const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization',
  'te', 'trailer', 'trailers', 'transfer-encoding', 'upgrade', 'http2-settings'
])

/** Request headers the proxy consumes or rebuilds itself. */
const REBUILT_REQUEST = new Set(['host', 'cookie', 'expect', 'via', PROFILE_HEADER])

/**
 * Names a configured default (or an autopilot header) can never add: they
 * describe the connection or the message framing, which the proxy owns.
 * undici refuses several of them outright (expect, upgrade, keep-alive, a
 * second host, transfer-encoding), so sending one would fail every request.
 */
const NEVER_DEFAULT = new Set([...HOP_BY_HOP, 'host', 'expect', 'via', PROFILE_HEADER, 'content-length'])

/**
 * By name length, whether a header might be one the proxy drops or reads:
 * any other name is copied without lower-casing it (most headers, most of
 * the time). Indexed by length; names longer than the table are never special.
 */
function lengthTable (names: Iterable<string>): boolean[] {
  const table: boolean[] = new Array<boolean>(20).fill(false)
  for (const n of names) table[n.length] = true
  return table
}
const SPECIAL_REQUEST_LENGTH = lengthTable([...HOP_BY_HOP, ...REBUILT_REQUEST])
const SPECIAL_RESPONSE_LENGTH = lengthTable([...HOP_BY_HOP, 'set-cookie', 'via'])

export interface RequestHeaderInfo {
  proxyAuthorization: string | undefined
  profile: string | undefined
  cookie: string | undefined
  via: string | undefined
  connection: string | undefined
  /** Whether a request body follows (Content-Length > 0 or Transfer-Encoding). */
  hasBody: boolean
}

/** One pass over the raw request headers for the few the proxy reads. */
export function scanRequestHeaders (raw: readonly string[]): RequestHeaderInfo {
  const info: RequestHeaderInfo = { proxyAuthorization: undefined, profile: undefined, cookie: undefined, via: undefined, connection: undefined, hasBody: false }
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!
    switch (name.length) {
      case 3:
        if (name.toLowerCase() === 'via') info.via = info.via === undefined ? raw[i + 1] : `${info.via}, ${raw[i + 1]!}`
        break
      case 6:
        if (name.toLowerCase() === 'cookie') info.cookie = info.cookie === undefined ? raw[i + 1] : `${info.cookie}; ${raw[i + 1]!}`
        break
      case 10:
        if (name.toLowerCase() === 'connection') info.connection = info.connection === undefined ? raw[i + 1] : `${info.connection}, ${raw[i + 1]!}`
        break
      case 14:
        if (name.toLowerCase() === 'content-length' && raw[i + 1] !== '0') info.hasBody = true
        break
      case 17: {
        const lower = name.toLowerCase()
        if (lower === PROFILE_HEADER) info.profile = raw[i + 1]
        else if (lower === 'transfer-encoding') info.hasBody = true
        break
      }
      case 19:
        if (name.toLowerCase() === 'proxy-authorization') info.proxyAuthorization = raw[i + 1]
        break
    }
  }
  return info
}

function connectionTokens (connection: string | undefined): Set<string> | null {
  if (connection === undefined) return null
  const tokens = new Set<string>()
  for (const t of connection.split(',')) {
    const token = t.trim().toLowerCase()
    if (token !== '' && token !== 'close' && token !== 'keep-alive') tokens.add(token)
  }
  return tokens.size === 0 ? null : tokens
}

export function checkVia (via: string | undefined, pseudonym: string): void {
  if (via !== undefined && via.includes(pseudonym)) {
    throw new LoopDetectedError(`request loop: this request already passed through this proxy (${pseudonym})`)
  }
}

export function appendVia (via: string | undefined, viaEntry: string): string {
  return via === undefined || via === '' ? viaEntry : `${via}, ${viaEntry}`
}

/** Merges the client's Cookie header with the jar's: the client's values win for the same name. */
export function mergeCookieHeaders (client: string | undefined, jar: string): string | undefined {
  if (client === undefined || client === '') return jar === '' ? undefined : jar
  if (jar === '') return client
  const own = new Set<string>()
  for (const part of client.split(';')) {
    const eq = part.indexOf('=')
    own.add((eq === -1 ? '' : part.slice(0, eq)).trim())
  }
  let out = client
  for (const part of jar.split('; ')) {
    const eq = part.indexOf('=')
    const name = eq === -1 ? '' : part.slice(0, eq)
    if (!own.has(name)) out += '; ' + part
  }
  return out
}

/** Names of the defaults marked `override` (hosts[].headers): they replace the client's own. */
function overrideNames (defaults: readonly DefaultHeader[]): Set<string> | null {
  let names: Set<string> | null = null
  for (const d of defaults) if (d[3] === true && !NEVER_DEFAULT.has(d[0])) (names ??= new Set()).add(d[0])
  return names
}

/**
 * Builds the upstream request's flat header list from the client's raw
 * headers. `defaults` are added only where the client sent no header of that
 * name, except those marked override, which replace the client's.
 */
export function buildRequestHeaders (
  raw: readonly string[],
  info: RequestHeaderInfo,
  defaults: readonly DefaultHeader[],
  cookie: string | undefined,
  authority: string,
  via: string
): string[] {
  const dropped = connectionTokens(info.connection)
  const out: string[] = []
  let present: Set<string> | null = defaults.length > 0 ? new Set() : null
  const overrides = present === null ? null : overrideNames(defaults)
  const plain = dropped === null && present === null
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!
    if (plain && SPECIAL_REQUEST_LENGTH[name.length] !== true) {
      out.push(name, raw[i + 1]!)
      continue
    }
    const lower = name.toLowerCase()
    if (HOP_BY_HOP.has(lower) || REBUILT_REQUEST.has(lower) || (dropped !== null && dropped.has(lower))) continue
    // Not marked present: the override default below takes its place.
    if (overrides !== null && overrides.has(lower)) continue
    present?.add(lower)
    out.push(name, raw[i + 1]!)
  }
  if (present !== null) {
    for (const [lower, name, value] of defaults) {
      if (!present.has(lower) && !NEVER_DEFAULT.has(lower)) out.push(name, value)
    }
    present = null
  }
  if (cookie !== undefined) out.push('cookie', cookie)
  out.push('host', authority, 'via', via)
  return out
}

export interface ResponseHeaders {
  headers: string[]
  setCookies: string[] | null
}

/**
 * Converts undici's raw response headers (Buffers) to a flat string list for
 * writeHead, without hop-by-hop headers. Bytes are kept as latin1 so
 * non-ASCII header values reach the client unchanged.
 */
export function buildResponseHeaders (raw: readonly Buffer[], viaEntry: string): ResponseHeaders {
  // One pass for the usual response, whose Connection header (if any) names
  // no other header; one that does takes the general two-pass way.
  let connection: string | undefined
  let via: string | undefined
  const headers: string[] = []
  let setCookies: string[] | null = null
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1')
    const value = raw[i + 1]!.toString('latin1')
    if (SPECIAL_RESPONSE_LENGTH[name.length] === true) {
      const lower = name.toLowerCase()
      if (lower === 'connection') {
        connection = connection === undefined ? value : `${connection}, ${value}`
        continue
      }
      if (HOP_BY_HOP.has(lower)) continue
      if (lower === 'set-cookie') (setCookies ??= []).push(value)
      else if (lower === 'via') { via = appendVia(via, value); continue }
    }
    headers.push(name, value)
  }
  if (connectionTokens(connection) !== null) return buildResponseHeadersNaming(raw, viaEntry)
  headers.push('via', appendVia(via, viaEntry))
  return { headers, setCookies }
}

/** buildResponseHeaders for a response whose Connection header names headers to drop. */
function buildResponseHeadersNaming (raw: readonly Buffer[], viaEntry: string): ResponseHeaders {
  let connection: string | undefined
  let via: string | undefined
  for (let i = 0; i < raw.length; i += 2) {
    const key = raw[i]!
    if (key.length === 10 && key.toString('latin1').toLowerCase() === 'connection') {
      connection = connection === undefined ? raw[i + 1]!.toString('latin1') : `${connection}, ${raw[i + 1]!.toString('latin1')}`
    }
  }
  const dropped = connectionTokens(connection)
  const headers: string[] = []
  let setCookies: string[] | null = null
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1')
    const lower = name.toLowerCase()
    if (HOP_BY_HOP.has(lower) || (dropped !== null && dropped.has(lower))) continue
    const value = raw[i + 1]!.toString('latin1')
    if (lower === 'set-cookie') (setCookies ??= []).push(value)
    else if (lower === 'via') { via = appendVia(via, value); continue }
    headers.push(name, value)
  }
  headers.push('via', appendVia(via, viaEntry))
  return { headers, setCookies }
}

/** Removes every header named `lower` (lower-case) from a flat name/value list. */
export function removeHeader (headers: string[], lower: string): void {
  for (let i = headers.length - 2; i >= 0; i -= 2) {
    if (headers[i]!.length === lower.length && headers[i]!.toLowerCase() === lower) headers.splice(i, 2)
  }
}

/**
 * RFC 9110 6.3 / 9112 6.3: a 204 and a 304 end with their header section,
 * whatever Content-Length says (on a 304 it describes the selected
 * representation, 9110 8.6, and is kept; a 204 has no content, and its
 * Content-Length is dropped). So does any response to HEAD.
 */
export function isBodilessStatus (statusCode: number): boolean {
  return statusCode === 204 || statusCode === 304
}

/** Characters Node refuses in a status line's reason phrase (and in header values). */
const UNWRITABLE = /[^\t\x20-\x7e\x80-\xff]/

/**
 * The reason phrase to relay, or undefined for Node's default: it is
 * informational (RFC 9112 4, clients ignore it) and not worth failing a
 * response over when Node will not write it.
 */
export function relayableReason (statusText: string): string | undefined {
  if (statusText === 'OK') return statusText
  return statusText === '' || UNWRITABLE.test(statusText) ? undefined : statusText
}
