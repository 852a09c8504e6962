/**
 * Requests the proxy makes on its own behalf (login steps, CSRF token
 * fetches): sent through the same pool, with the profile's cookies, and their
 * Set-Cookie stored in the profile's jar like any proxied response's.
 */
import type { Profile } from '../session/profiles.js'
import type { DefaultHeader } from '../session/host-defaults.js'
import { buildResponseHeaders } from './headers.js'
import { parseTarget, type Target } from './target.js'
import type { UpstreamPool } from './upstream.js'
import { mapUpstreamError } from './upstream-errors.js'

export interface SessionRequest {
  method: string
  url: string
  headers?: Array<[string, string]>
  body?: Buffer
}

export interface SessionResponse {
  status: number
  /** Flat name/value list, hop-by-hop removed. */
  headers: string[]
  setCookies: string[] | null
  body: string
  target: Target
}

const MAX_BODY = 2 * 1024 * 1024

export interface SessionClientDeps {
  pool: UpstreamPool
  via: { entry: string }
}

export async function sendWithSession (deps: SessionClientDeps, profile: Profile, request: SessionRequest, requestId: number, extra: readonly DefaultHeader[] = []): Promise<SessionResponse> {
  const target = parseTarget(request.url)
  const headers: string[] = []
  const names = new Set<string>()
  for (const [name, value] of request.headers ?? []) { headers.push(name, value); names.add(name.toLowerCase()) }
  for (const [lower, name, value] of profile.defaults.forHost(target.authority, target.host, target.port)) {
    if (!names.has(lower)) { headers.push(name, value); names.add(lower) }
  }
  for (const [lower, name, value] of extra) if (!names.has(lower)) headers.push(name, value)
  const cookie = profile.jar.cookieHeader(target.cookieUrl, target.cookieUrl)
  if (cookie !== '') headers.push('cookie', cookie)
  if (request.body !== undefined) headers.push('content-length', String(request.body.length))
  headers.push('host', target.authority, 'via', deps.via.entry)

  return await new Promise<SessionResponse>((resolve, reject) => {
    let status = 0
    let responseHeaders: string[] = []
    let setCookies: string[] | null = null
    const chunks: Buffer[] = []
    let size = 0
    deps.pool.dispatch(target, { method: request.method, path: target.path, headers, body: request.body ?? null }, {
      onConnect () {},
      onHeaders (statusCode: number, raw: Buffer[]): boolean {
        if (statusCode < 200) return true
        status = statusCode
        const built = buildResponseHeaders(raw, deps.via.entry)
        responseHeaders = built.headers
        setCookies = built.setCookies
        if (setCookies !== null) profile.capture(setCookies, target.cookieUrl, requestId)
        return true
      },
      onData (chunk: Buffer): boolean {
        if (size < MAX_BODY) chunks.push(chunk)
        size += chunk.length
        return true
      },
      onComplete () {
        const written = profile.pendingWrite ?? Promise.resolve()
        void written.then(() => resolve({ status, headers: responseHeaders, setCookies, body: Buffer.concat(chunks).toString('latin1'), target }))
      },
      onError (err: Error) { reject(mapUpstreamError(err, target.authority)) }
    })
  })
}
