/**
 * An upstream response held at its head: the managed path decides, after
 * seeing status and headers (and sometimes a small body), whether to deliver
 * it, read it whole, or drop it and send the request again. undici stops
 * reading the socket while the head is held (onHeaders returns false).
 */
import type { ServerResponse } from 'node:http'
import { buildResponseHeaders, isBodilessStatus, relayableReason, removeHeader } from './headers.js'
import { headerValue } from '../session/autopilot/values.js'

export interface ResponseHead {
  status: number
  statusText: string
  headers: string[]
  setCookies: string[] | null
  contentType: string
}

type Sink = (chunk: Buffer) => boolean

export class HeldResponse {
  readonly head: Promise<ResponseHead>
  private resolveHead!: (head: ResponseHead) => void
  private rejectHead!: (err: Error) => void
  private headSeen = false
  /** A 204 or 304: complete at its head, whatever undici says about its framing later. */
  private bodiless = false
  private resumeUpstream: (() => void) | null = null
  private abortUpstream: ((err?: Error) => void) | null = null
  private sink: Sink | null = null
  private pending: Buffer[] = []
  private done = false
  private failure: Error | null = null
  private onSettled: (() => void) | null = null
  private readonly viaEntry: string

  constructor (viaEntry: string) {
    this.viaEntry = viaEntry
    this.head = new Promise<ResponseHead>((resolve, reject) => { this.resolveHead = resolve; this.rejectHead = reject })
    // The head promise may be rejected before anyone awaits it.
    this.head.catch(() => {})
  }

  // undici handler (callback form; see forward.ts for why)
  onConnect (abort: (err?: Error) => void): void {
    this.abortUpstream = abort
  }

  onHeaders (statusCode: number, raw: Buffer[], resume: () => void, statusText: string): boolean {
    if (statusCode < 200) return true
    this.headSeen = true
    this.resumeUpstream = resume
    const { headers, setCookies } = buildResponseHeaders(raw, this.viaEntry)
    if (isBodilessStatus(statusCode)) {
      this.bodiless = true
      if (statusCode === 204) removeHeader(headers, 'content-length')
    }
    this.resolveHead({ status: statusCode, statusText: relayableReason(statusText) ?? '', headers, setCookies, contentType: headerValue(headers, 'content-type') ?? '' })
    return false
  }

  onData (chunk: Buffer): boolean {
    if (this.bodiless) return true
    if (this.sink !== null) return this.sink(chunk)
    this.pending.push(chunk)
    return false
  }

  onComplete (): void {
    this.done = true
    this.onSettled?.()
  }

  onError (err: Error): void {
    if (!this.headSeen) { this.rejectHead(err); return }
    if (this.done) return
    // undici rejects a 304 whose Content-Length (allowed, RFC 9110 8.6) it
    // then finds no body for, or a 204 followed by stray bytes: the response
    // itself was whole at its head.
    if (!this.bodiless) this.failure = err
    this.done = true
    this.onSettled?.()
  }

  abort (): void {
    this.abortUpstream?.(new Error('response no longer needed'))
  }

  /** Reads up to `limit` bytes; `complete` says whether that was the whole body. */
  async readAll (limit: number): Promise<{ body: Buffer, complete: boolean }> {
    const chunks = this.pending
    this.pending = []
    let size = chunks.reduce((n, c) => n + c.length, 0)
    if (!this.done && size <= limit) {
      await new Promise<void>((resolve) => {
        this.onSettled = resolve
        this.sink = (chunk) => {
          chunks.push(chunk)
          size += chunk.length
          if (size > limit) { this.sink = null; resolve(); return false }
          return true
        }
        this.resumeUpstream?.()
      })
      this.onSettled = null
    }
    if (this.failure !== null) throw this.failure
    return { body: Buffer.concat(chunks), complete: this.done && this.pending.length === 0 }
  }

  /**
   * Lets the rest of the body go, so the connection returns to the pool, but
   * at most `maxBytes` of it and for at most `timeoutMs`: a bigger or slower
   * body costs the connection (aborted) instead of bandwidth and time.
   */
  discard (maxBytes: number, timeoutMs: number): void {
    let size = this.pending.reduce((n, c) => n + c.length, 0)
    this.pending = []
    if (this.done) return
    if (size > maxBytes) { this.abort(); return }
    const timer = setTimeout(() => this.abort(), timeoutMs)
    timer.unref()
    this.onSettled = () => clearTimeout(timer)
    this.sink = (chunk) => {
      size += chunk.length
      if (size <= maxBytes) return true
      clearTimeout(timer)
      this.sink = () => false
      this.abort()
      return false
    }
    this.resumeUpstream?.()
  }

  /**
   * Streams what is left of the body to the client with backpressure.
   * `tap` sees every chunk (token capture). Resolves when the body ended.
   */
  async pipe (res: ServerResponse, tap: ((chunk: Buffer) => void) | null): Promise<void> {
    for (const chunk of this.pending) { tap?.(chunk); res.write(chunk) }
    this.pending = []
    if (!this.done) {
      await new Promise<void>((resolve) => {
        this.onSettled = resolve
        const resume = (): void => this.resumeUpstream?.()
        res.on('drain', resume)
        this.sink = (chunk) => { tap?.(chunk); return res.write(chunk) }
        resume()
      })
    }
    if (this.failure !== null) {
      res.destroy(this.failure)
      throw this.failure
    }
    res.end()
  }
}
