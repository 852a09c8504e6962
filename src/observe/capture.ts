/**
 * Opt-in traffic capture per profile: the last N exchanges with headers
 * (secrets redacted when the exchange is captured, so they are never held),
 * body sizes, and response bodies up to a limit; exported as HAR.
 *
 * It is an ExchangeObserver that is in deps.observers only while some
 * profile captures: with capture off everywhere the hot path sees an empty
 * observer list (or only the metrics observer) and pays nothing for it.
 */
import { performance } from 'node:perf_hooks'
import type { Exchange, ExchangeObserver } from '../contracts/exchange.js'
import { MAX_CAPTURE_BODY_BYTES, MAX_CAPTURE_ENTRIES, type CaptureSettings } from '../contracts/settings.js'
import { BadRequestError } from '../errors.js'
import { isSecretHeader, redactHeader } from './redact.js'

export const DEFAULT_CAPTURE: CaptureSettings = { enabled: false, maxEntries: 200, maxBodyBytes: 64 * 1024, redact: true }
/** The defaults, switched on: what a refusal shows as an example (stated once, here). */
const CAPTURE_EXAMPLE = JSON.stringify({ ...DEFAULT_CAPTURE, enabled: true })

export interface CapturedExchange {
  requestId: number
  profile: string
  /** Epoch ms. */
  startedAt: number
  method: string
  url: string
  /** The client's HTTP version: '1.1', or '2.0' for a stream of an HTTP/2 client. */
  httpVersion: string
  requestHeaders: Array<[string, string]>
  /** From Content-Length; -1 when the body was chunked. The proxy streams request bodies without reading them. */
  requestBodySize: number
  status: number
  responseHeaders: Array<[string, string]>
  /** Bytes received from upstream (after any content coding). */
  responseBytes: number
  body: Buffer | null
  bodyTruncated: boolean
  /** ms until the response head was forwarded, or -1 when it never was. */
  waitMs: number
  totalMs: number
  error: { code: string, message: string } | null
  redacted: boolean
}

interface InFlight {
  waitMs: number
  chunks: Buffer[]
  kept: number
  truncated: boolean
}

interface ProfileCapture {
  settings: CaptureSettings
  entries: CapturedExchange[]
}

function pairs (flat: readonly string[] | null, redact: boolean): Array<[string, string]> {
  const out: Array<[string, string]> = []
  if (flat === null) return out
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const name = flat[i]!
    const lower = name.toLowerCase()
    out.push([name, redact && isSecretHeader(lower) ? redactHeader(lower, flat[i + 1]!) : flat[i + 1]!])
  }
  return out
}

function requestBodySize (headers: readonly string[]): number {
  for (let i = 0; i + 1 < headers.length; i += 2) {
    const lower = headers[i]!.toLowerCase()
    if (lower === 'content-length') return Number(headers[i + 1]) || 0
    if (lower === 'transfer-encoding') return -1
  }
  return 0
}

export function validateCaptureSettings (input: unknown, base: CaptureSettings): CaptureSettings {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw new BadRequestError('SP_CAPTURE_INVALID', `expected a JSON object like ${CAPTURE_EXAMPLE}`)
  const o = input as Record<string, unknown>
  const out = { ...base }
  for (const [k, v] of Object.entries(o)) {
    if (k === 'enabled' || k === 'redact') {
      if (typeof v !== 'boolean') throw new BadRequestError('SP_CAPTURE_INVALID', `${k} must be true or false`)
      out[k] = v
    } else if (k === 'maxEntries' || k === 'maxBodyBytes') {
      const max = k === 'maxEntries' ? MAX_CAPTURE_ENTRIES : MAX_CAPTURE_BODY_BYTES
      if (typeof v !== 'number' || !Number.isInteger(v) || v < (k === 'maxEntries' ? 1 : 0) || v > max) throw new BadRequestError('SP_CAPTURE_INVALID', `${k} must be an integer from ${k === 'maxEntries' ? 1 : 0} to ${max}`)
      out[k] = v
    } else {
      throw new BadRequestError('SP_CAPTURE_INVALID', `unknown capture setting "${k.slice(0, 40)}"`)
    }
  }
  return out
}

export class TrafficCapture implements ExchangeObserver {
  private readonly profiles = new Map<string, ProfileCapture>()
  private readonly inFlight = new Map<number, InFlight>()
  private readonly observers: ExchangeObserver[]

  /**
   * `observers` is deps.observers: this adds and removes itself there.
   * `configured` gives the settings of a profile not configured by name (a
   * pattern block's), taken up at its first exchange; `patternCaptures` keeps
   * this an observer for those.
   */
  constructor (observers: ExchangeObserver[], private readonly configured: (profile: string) => CaptureSettings | undefined = () => undefined, private readonly patternCaptures = false) {
    this.observers = observers
    if (patternCaptures) observers.push(this)
  }

  settings (profile: string): CaptureSettings {
    return this.profiles.get(profile)?.settings ?? this.configured(profile) ?? DEFAULT_CAPTURE
  }

  /** The profile's capture, set up from its configured settings when they capture. */
  private of (profile: string): ProfileCapture | undefined {
    const p = this.profiles.get(profile)
    if (p !== undefined || !this.patternCaptures) return p
    const settings = this.configured(profile)
    if (settings?.enabled !== true) return undefined
    const created = { settings, entries: [] }
    this.profiles.set(profile, created)
    return created
  }

  configure (profile: string, settings: CaptureSettings): void {
    const existing = this.profiles.get(profile)
    const entries = existing?.entries ?? []
    if (entries.length > settings.maxEntries) entries.splice(0, entries.length - settings.maxEntries)
    this.profiles.set(profile, { settings, entries })
    const anyOn = this.patternCaptures || [...this.profiles.values()].some((p) => p.settings.enabled)
    const at = this.observers.indexOf(this)
    if (anyOn && at === -1) this.observers.push(this)
    else if (!anyOn && at !== -1) this.observers.splice(at, 1)
  }

  entries (profile: string): readonly CapturedExchange[] {
    return this.profiles.get(profile)?.entries ?? []
  }

  clear (profile: string): number {
    const p = this.profiles.get(profile)
    if (p === undefined) return 0
    const n = p.entries.length
    p.entries = []
    return n
  }

  onResponseHead (x: Exchange): void {
    const p = this.of(x.profile.name)
    if (p === undefined || !p.settings.enabled) return
    this.flight(x).waitMs = performance.now() - x.started
  }

  onResponseData (x: Exchange, chunk: Buffer): void {
    const p = this.of(x.profile.name)
    if (p === undefined || !p.settings.enabled) return
    const f = this.flight(x)
    const room = p.settings.maxBodyBytes - f.kept
    if (room <= 0) { f.truncated = true; return }
    const part = chunk.length <= room ? chunk : chunk.subarray(0, room)
    // Copy: undici may reuse the chunk's memory after onData returns.
    f.chunks.push(Buffer.from(part))
    f.kept += part.length
    if (part.length < chunk.length) f.truncated = true
  }

  onDone (x: Exchange): void {
    const f = this.inFlight.get(x.id)
    this.inFlight.delete(x.id)
    const p = this.of(x.profile.name)
    if (p === undefined || !p.settings.enabled) return
    const redact = p.settings.redact
    const t = x.target
    p.entries.push({
      requestId: x.id,
      profile: x.profile.name,
      startedAt: x.startedAt,
      method: x.method,
      url: `${t.scheme}://${t.authority}${t.path}`,
      httpVersion: t.clientHttpVersion ?? '1.1',
      requestHeaders: pairs(x.requestHeaders, redact),
      requestBodySize: requestBodySize(x.requestHeaders),
      status: x.status,
      responseHeaders: pairs(x.responseHeaders, redact),
      responseBytes: x.responseBytes,
      body: f === undefined || f.chunks.length === 0 ? null : Buffer.concat(f.chunks),
      bodyTruncated: f?.truncated ?? false,
      waitMs: f?.waitMs ?? -1,
      totalMs: performance.now() - x.started,
      error: x.error === null ? null : { code: x.error.code, message: x.error.message },
      redacted: redact
    })
    if (p.entries.length > p.settings.maxEntries) p.entries.shift()
  }

  private flight (x: Exchange): InFlight {
    let f = this.inFlight.get(x.id)
    if (f === undefined) {
      f = { waitMs: -1, chunks: [], kept: 0, truncated: false }
      this.inFlight.set(x.id, f)
    }
    return f
  }
}
