/**
 * Parses an absolute-form request target (`http://host:port/path?q`) with
 * string slicing: WHATWG URL parsing costs more than the rest of the hot path
 * together, and the proxy needs only these parts.
 */
import { BadRequestError } from '../errors.js'

export interface Target {
  scheme: 'http' | 'https'
  /** Lower-cased host; IPv6 in brackets. */
  host: string
  port: number
  /** host[:port] as the client wrote it (lower-cased host), used for Host. */
  authority: string
  /** Origin-form path with query, what goes on the upstream request line. */
  path: string
  /** scheme://authority/path without query: the URL cookies are matched against. */
  cookieUrl: string
  /** The client's HTTP version when it is not HTTP/1.x ('2.0' for a stream of an HTTP/2 client): what HAR exports record. */
  clientHttpVersion?: '2.0'
}

const HOST_CHARS = /^(?:[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?\.?)+$|^\[[0-9a-f:.]+\]$/

export function parseTarget (url: string): Target {
  let scheme: 'http' | 'https'
  let rest: number
  const c4 = url.charCodeAt(4)
  if (url.length > 7 && (c4 === 58 /* : */) && url.slice(0, 7).toLowerCase() === 'http://') {
    scheme = 'http'; rest = 7
  } else if (url.length > 8 && url.slice(0, 8).toLowerCase() === 'https://') {
    scheme = 'https'; rest = 8
  } else {
    throw new BadRequestError('SP_BAD_TARGET', `request target ${JSON.stringify(url.slice(0, 100))} is not an absolute http:// or https:// URL`)
  }
  let end = rest
  while (end < url.length) {
    const ch = url.charCodeAt(end)
    if (ch === 47 /* / */ || ch === 63 /* ? */ || ch === 35 /* # */) break
    end++
  }
  let authority = url.slice(rest, end).toLowerCase()
  if (authority.includes('@')) throw new BadRequestError('SP_BAD_TARGET', 'request target must not contain user info (user@host)')
  let host = authority
  let port = scheme === 'http' ? 80 : 443
  const colon = authority.lastIndexOf(':')
  if (colon !== -1 && colon > authority.lastIndexOf(']')) {
    const portText = authority.slice(colon + 1)
    host = authority.slice(0, colon)
    if (portText !== '') {
      if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535 || Number(portText) === 0) {
        throw new BadRequestError('SP_BAD_TARGET', `request target has an invalid port ${JSON.stringify(portText)}`)
      }
      port = Number(portText)
    } else {
      authority = host
    }
  }
  if (host === '' || !HOST_CHARS.test(host)) {
    throw new BadRequestError('SP_BAD_TARGET', `request target has an invalid host ${JSON.stringify(host.slice(0, 100))}`)
  }
  let path = url.slice(end)
  const hash = path.indexOf('#')
  if (hash !== -1) path = path.slice(0, hash)
  if (path === '') path = '/'
  else if (path.charCodeAt(0) === 63) path = '/' + path
  const q = path.indexOf('?')
  const cookieUrl = `${scheme}://${authority}${q === -1 ? path : path.slice(0, q)}`
  return { scheme, host, port, authority, path, cookieUrl }
}
