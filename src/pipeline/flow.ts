/**
 * The Flow an addon's hooks see. Its header views work on the proxy's own
 * flat name/value lists in place (the arrays that go to undici and to
 * writeHead), so a hook's change is what is sent, with no copy on the way.
 * Flows are only made when at least one addon hook is loaded.
 */
import { validateHeaderName, validateHeaderValue } from 'node:http'
import type { Flow as AddonFlow, FlowAnswer, FlowError, FlowHeaders, FlowKind, FlowRequest, FlowResponse } from '../contracts/addon.js'

/** A case-insensitive view of a flat `[name, value, name, value, …]` list. */
export class HeaderList implements FlowHeaders {
  constructor (readonly raw: string[]) {}

  get (name: string): string | undefined {
    const lower = name.toLowerCase()
    const raw = this.raw
    for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === lower) return raw[i + 1]
    return undefined
  }

  has (name: string): boolean {
    return this.get(name) !== undefined
  }

  set (name: string, value: string): void {
    const lower = name.toLowerCase()
    const raw = this.raw
    let found = false
    for (let i = 0; i < raw.length; i += 2) {
      if (raw[i]!.toLowerCase() !== lower) continue
      if (!found) { raw[i + 1] = String(value); found = true; continue }
      raw.splice(i, 2)
      i -= 2
    }
    if (!found) raw.push(name, String(value))
  }

  delete (name: string): boolean {
    const lower = name.toLowerCase()
    const raw = this.raw
    let found = false
    for (let i = raw.length - 2; i >= 0; i -= 2) {
      if (raw[i]!.toLowerCase() === lower) { raw.splice(i, 2); found = true }
    }
    return found
  }

  * entries (): IterableIterator<[string, string]> {
    const raw = this.raw
    for (let i = 0; i < raw.length; i += 2) yield [raw[i]!, raw[i + 1]!]
  }

  [Symbol.iterator] (): IterableIterator<[string, string]> {
    return this.entries()
  }
}

/** flow.kind of a request on the HTTP path: reverse mode, else by the scheme the client asked for. */
export function flowKind (scheme: string, reverse: boolean): 'http' | 'https' | 'reverse' {
  if (reverse) return 'reverse'
  return scheme === 'https' ? 'https' : 'http'
}

/** A respond() answer, normalised: a flat header list and the body as bytes. */
export interface LocalAnswer {
  status: number
  headers: string[]
  body: Buffer
}

function toAnswer (a: FlowAnswer): LocalAnswer {
  const status = a.status ?? 200
  if (!Number.isInteger(status) || status < 200 || status > 599) throw new TypeError(`respond(): status ${String(status)} is not an integer from 200 to 599`)
  const headers: string[] = []
  const given = a.headers
  if (given !== undefined && given !== null) {
    const pairs = Symbol.iterator in given ? given as Iterable<[string, string]> : Object.entries(given)
    for (const [name, value] of pairs) {
      // Checked here, so a bad header fails the hook that set it (SP_ADDON_ERROR), not the write.
      validateHeaderName(String(name))
      validateHeaderValue(String(name), String(value))
      headers.push(String(name), String(value))
    }
  }
  const view = new HeaderList(headers)
  // The proxy frames the body itself.
  view.delete('transfer-encoding')
  if (status === 204 || status === 304) {
    // No body, whatever was given (RFC 9110 6.4.1).
    view.delete('content-length')
    return { status, headers, body: Buffer.alloc(0) }
  }
  const body = a.body === undefined || a.body === null ? Buffer.alloc(0) : typeof a.body === 'string' ? Buffer.from(a.body) : Buffer.from(a.body.buffer, a.body.byteOffset, a.body.byteLength)
  view.set('content-length', String(body.length))
  return { status, headers, body }
}

export class Flow implements AddonFlow {
  readonly request: FlowRequest
  response: FlowResponse | undefined = undefined
  error: FlowError | undefined = undefined
  /** Set by respond(): what the client gets instead of the upstream's answer. */
  answer: LocalAnswer | null = null
  /** respond() is allowed only while request hooks run. */
  inRequest = false

  constructor (readonly id: number, readonly profile: string, readonly kind: FlowKind, method: string, url: string, requestHeaders: string[]) {
    this.request = { method, url, headers: new HeaderList(requestHeaders) }
  }

  setResponse (status: number, headers: string[]): void {
    this.response = { status, headers: new HeaderList(headers) }
  }

  setError (err: { code: string, statusCode: number, message: string }): void {
    this.error = { code: err.code, status: err.statusCode, message: err.message }
  }

  respond (answer: FlowAnswer): void {
    if (!this.inRequest) throw new Error('flow.respond() can only be called from a request hook')
    this.answer = toAnswer(answer)
  }
}
