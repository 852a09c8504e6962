/**
 * Reverse (sidecar) mode: an app with no proxy settings calls
 * `http://sidecar:8080/path`, and the request goes to `<base>/path` with the
 * profile's session. The jar lives in the proxy, so Set-Cookie needs no
 * rewriting for the client; only redirects to the upstream's own origin are
 * rewritten so the client's next request comes back through the proxy.
 */
import type { IncomingMessage } from 'node:http'
import { ConfigError } from '../errors.js'
import type { ForwardOptions } from '../contracts/exchange.js'
import type { Target } from './target.js'

export interface ReverseBase {
  scheme: 'http' | 'https'
  host: string
  port: number
  authority: string
  /** The base URL's path without a trailing slash ('' for the root). */
  basePath: string
  /** scheme://authority, as URL.origin writes it (default port omitted). */
  origin: string
}

export function parseReverseBase (raw: string): ReverseBase {
  let u: URL
  try {
    u = new URL(raw)
  } catch {
    throw new ConfigError(`reverse: "${raw}" is not a URL (expected e.g. https://api.example.com)`)
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new ConfigError(`reverse: "${raw}" must be an http:// or https:// URL`)
  if (u.username !== '' || u.password !== '') throw new ConfigError('reverse: the URL must not carry credentials (configure hosts[].auth instead)')
  if (u.search !== '' || u.hash !== '') throw new ConfigError('reverse: the URL must not have a query or fragment')
  const scheme = u.protocol === 'https:' ? 'https' : 'http'
  return {
    scheme,
    host: u.hostname.toLowerCase(),
    port: u.port === '' ? (scheme === 'https' ? 443 : 80) : Number(u.port),
    authority: u.host.toLowerCase(),
    basePath: u.pathname.replace(/\/+$/, ''),
    origin: u.origin
  }
}

/** The upstream target for an origin-form request path (which starts with '/'). */
export function reverseTarget (base: ReverseBase, url: string): Target {
  const path = base.basePath + url
  const q = path.indexOf('?')
  return {
    scheme: base.scheme,
    host: base.host,
    port: base.port,
    authority: base.authority,
    path,
    cookieUrl: `${base.scheme}://${base.authority}${q === -1 ? path : path.slice(0, q)}`
  }
}

/** Admin routes stay with the proxy itself. */
export function isAdminPath (url: string): boolean {
  return url === '/_session' || url.startsWith('/_session/') || url.startsWith('/_session?')
}

/**
 * Location values pointing into the upstream's base are mapped to the
 * proxy's origin as the client addressed it (its Host header).
 */
export function rewriteLocation (base: ReverseBase, location: string, proxyOrigin: string): string {
  let path: string
  if (location.startsWith('/') && !location.startsWith('//')) {
    path = location
  } else {
    let u: URL
    try {
      u = new URL(location, base.origin + '/')
    } catch {
      return location
    }
    if (u.origin !== base.origin) return location
    path = u.pathname + u.search + u.hash
    if (base.basePath === '') return proxyOrigin + path
  }
  if (base.basePath === '') return location.startsWith('/') ? location : proxyOrigin + path
  if (path === base.basePath || path.startsWith(base.basePath + '/') || path.startsWith(base.basePath + '?')) {
    const rest = path.slice(base.basePath.length)
    return (location.startsWith('/') ? '' : proxyOrigin) + (rest.startsWith('/') ? rest : '/' + rest)
  }
  return location
}

/** Per-request options: the Location rewrite needs the Host the client used. */
export function reverseOptions (base: ReverseBase, req: IncomingMessage, fallbackHost: string): ForwardOptions {
  const host = req.headers.host ?? fallbackHost
  const proxyOrigin = `http://${host}`
  return {
    rewriteResponseHeaders: (headers) => {
      for (let i = 0; i < headers.length; i += 2) {
        if (headers[i]!.length === 8 && headers[i]!.toLowerCase() === 'location') headers[i + 1] = rewriteLocation(base, headers[i + 1]!, proxyOrigin)
      }
    }
  }
}
