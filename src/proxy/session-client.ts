/**
 * Requests the proxy makes on its own behalf (login steps, CSRF token
 * fetches): sent through the same pool, with the profile's cookies, and their
 * Set-Cookie stored in the profile's jar like any proxied response's.
 *
 * Each one is bounded: it must complete within `limits.timeoutMs` and its
 * body may not exceed `limits.maxBodyBytes` (limits.loginStepTimeoutMs and
 * limits.loginMaxBodyBytes); beyond either the upstream request is aborted
 * and the call fails with SP_LOGIN_STEP_TIMEOUT or SP_LOGIN_STEP_TOO_LARGE
 * (502). An `signal` that aborts (the client went away) aborts it too.
 */
import type { Profile } from '../session/profiles.js'
import type { DefaultHeader } from '../session/host-defaults.js'
import { SessionProxyError, UpstreamError } from '../errors.js'
import { buildResponseHeaders } from './headers.js'
import { asProxyError } from './respond.js'
import { parseTarget, type Target } from './target.js'
import type { UpstreamPool } from './upstream.js'
import { mapUpstreamError } from './upstream-errors.js'
import type { CompiledHooks } from '../contracts/hooks.js'
import { Flow } from '../pipeline/flow.js'
import { runHooks } from '../pipeline/hooks.js'

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
  /** Whether the response changed the jar. */
  cookiesChanged: boolean
}

export interface SessionRequestLimits {
  timeoutMs: number
  maxBodyBytes: number
}

export interface SessionRequestOptions {
  limits: SessionRequestLimits
  /** Aborts the request (the client it was made for went away). */
  signal?: AbortSignal
}

export interface SessionClientDeps {
  pool: UpstreamPool
  via: { entry: string }
  /** Addon hooks: they see these requests as flow.kind 'login'. */
  hooks?: CompiledHooks
}

/**
 * The headers of a request the proxy makes: the step's own win; then the
 * autopilot's session values (`extra`: login token, session headers, CSRF),
 * which win over host defaults of the same name, so one value goes per name.
 */
function stepHeaders (profile: Profile, target: Target, own: ReadonlyArray<[string, string]>, extra: readonly DefaultHeader[]): string[] {
  const headers: string[] = []
  const names = new Set<string>()
  for (const [name, value] of own) { headers.push(name, value); names.add(name.toLowerCase()) }
  const merged = new Map<string, DefaultHeader>()
  if (!profile.defaults.empty) for (const h of profile.defaults.forHost(target.authority, target.host, target.port)) merged.set(h[0], h)
  for (const h of extra) merged.set(h[0], h)
  for (const [lower, name, value] of merged.values()) if (!names.has(lower)) headers.push(name, value)
  return headers
}

export async function sendWithSession (deps: SessionClientDeps, profile: Profile, request: SessionRequest, requestId: number, extra: readonly DefaultHeader[], opts: SessionRequestOptions): Promise<SessionResponse> {
  const target = parseTarget(request.url)
  const headers = stepHeaders(profile, target, request.headers ?? [], extra)
  const cookie = profile.jar.cookieHeader(target.cookieUrl, target.cookieUrl)
  if (cookie !== '') headers.push('cookie', cookie)
  if (request.body !== undefined) headers.push('content-length', String(request.body.length))
  headers.push('host', target.authority, 'via', deps.via.entry)
  const what = `${request.method} ${request.url.length > 200 ? request.url.slice(0, 200) + '…' : request.url}`
  const { timeoutMs, maxBodyBytes } = opts.limits
  const forProfile = deps.hooks !== undefined && deps.hooks.size !== 0 ? deps.hooks.forProfile(profile) : null
  const hooks = forProfile !== null && forProfile.size !== 0 ? forProfile : null
  let flow: Flow | null = null
  if (hooks !== null) {
    flow = new Flow(requestId, profile.name, 'login', request.method, `${target.scheme}://${target.authority}${target.path}`, headers)
    await runHooks(hooks, 'request', flow)
    if (flow.answer !== null) {
      // Answered by an addon: taken as the upstream's answer, its cookies stored.
      const answer = flow.answer
      const built = buildResponseHeaders(answer.headers.map((h) => Buffer.from(h, 'latin1')), deps.via.entry)
      const cookiesChanged = built.setCookies !== null && profile.capture(built.setCookies, target.cookieUrl, requestId)
      if (profile.pendingWrite !== null) await profile.pendingWrite.catch(() => undefined)
      return { status: answer.status, headers: built.headers, setCookies: built.setCookies, body: answer.body.toString('latin1'), target, cookiesChanged }
    }
  }

  return await new Promise<SessionResponse>((resolve, reject) => {
    let status = 0
    let responseHeaders: string[] = []
    let setCookies: string[] | null = null
    let cookiesChanged = false
    const chunks: Buffer[] = []
    let size = 0
    let settled = false
    /** A response hook that is still running (async): the answer waits for it. */
    let hooked: Promise<void> | undefined
    let abortUpstream: ((err?: Error) => void) | null = null
    const finish = (): void => {
      settled = true
      clearTimeout(timer)
      opts.signal?.removeEventListener('abort', onAbort)
    }
    const fail = (err: Error): void => {
      if (settled) return
      finish()
      abortUpstream?.(err)
      reject(err)
    }
    const onAbort = (): void => fail(new SessionProxyError('SP_CLIENT_GONE', 499, `${what}: the client went away`))
    const timer = setTimeout(() => fail(new UpstreamError('SP_LOGIN_STEP_TIMEOUT', 502, target.authority, `${what}: no complete answer within ${timeoutMs} ms (limits.loginStepTimeoutMs)`)), timeoutMs)
    timer.unref()
    if (opts.signal?.aborted === true) { onAbort(); return }
    opts.signal?.addEventListener('abort', onAbort, { once: true })
    try {
      deps.pool.dispatch(target, { method: request.method, path: target.path, headers, body: request.body ?? null }, {
        onConnect (abort: (err?: Error) => void) {
          abortUpstream = abort
          if (settled) abort(new Error('no longer needed'))
        },
        onHeaders (statusCode: number, raw: Buffer[], resume: () => void): boolean {
          if (settled) return false
          if (statusCode < 200) return true
          try {
            status = statusCode
            const built = buildResponseHeaders(raw, deps.via.entry)
            responseHeaders = built.headers
            setCookies = built.setCookies
            if (setCookies !== null) cookiesChanged = profile.capture(setCookies, target.cookieUrl, requestId)
            if (flow !== null && hooks!.response.length !== 0) {
              flow.setResponse(statusCode, responseHeaders)
              hooked = runHooks(hooks!, 'response', flow)
            }
          } catch (err) {
            fail(asProxyError(err))
            return false
          }
          if (hooked === undefined) return true
          hooked.then(() => { if (!settled) resume() }, (err: unknown) => fail(asProxyError(err)))
          return false
        },
        onData (chunk: Buffer): boolean {
          if (settled) return false
          size += chunk.length
          if (size > maxBodyBytes) {
            fail(new UpstreamError('SP_LOGIN_STEP_TOO_LARGE', 502, target.authority, `${what}: the answer is larger than ${maxBodyBytes} bytes (limits.loginMaxBodyBytes)`))
            return false
          }
          chunks.push(chunk)
          return true
        },
        onComplete () {
          if (settled) return
          finish()
          const response: SessionResponse = { status, headers: responseHeaders, setCookies, body: Buffer.concat(chunks).toString('latin1'), target, cookiesChanged }
          // pendingWrite never rejects (the persistence contract).
          const written = profile.pendingWrite ?? Promise.resolve()
          const settle = (): void => { void written.then(() => resolve(response), () => resolve(response)) }
          if (hooked === undefined) settle()
          else hooked.then(settle, (err: unknown) => reject(asProxyError(err)))
        },
        onError (err: Error) { fail(mapUpstreamError(err, target.authority)) }
      })
    } catch (err) {
      fail(err instanceof SessionProxyError ? err : mapUpstreamError(err, target.authority))
    }
  })
}
