/**
 * The Flow an addon's hooks see. Its header views work on the proxy's own
 * flat name/value lists in place (the arrays that go to undici and to
 * writeHead), so a hook's change is what is sent, with no copy on the way.
 * Flows are only made when at least one addon hook is loaded.
 */
import { validateHeaderName, validateHeaderValue } from 'node:http'
import type { Flow as AddonFlow, FlowAnswer, FlowError, FlowHeaders, FlowKind, FlowRequest, FlowResponse } from '../contracts/addon.js'

/**
 * Node's own checks (http.validateHeaderName/Value), made where the addon
 * calls, so a bad header fails the hook that set it (SP_ADDON_ERROR naming
 * it) rather than the upstream dispatch or writeHead later.
 */
function checkedHeader (name: unknown, value: unknown): [string, string] {
  if (typeof name !== 'string') throw new TypeError(`header name must be a string, not ${name === null ? 'null' : typeof name}`)
  const v = typeof value === 'string' ? value : typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint' ? String(value) : null
  if (v === null) throw new TypeError(`header "${name.slice(0, 100)}": the value must be a string or a number, not ${value === null ? 'null' : typeof value}`)
  validateHeaderName(name)
  validateHeaderValue(name, v)
  return [name, v]
}

/** A case-insensitive view of a flat `[name, value, name, value, …]` list. */
export class HeaderList implements FlowHeaders {
  constructor (readonly raw: string[]) {}

  get (name: string): string | undefined {
    if (typeof name !== 'string') return undefined
    const lower = name.toLowerCase()
    const raw = this.raw
    for (let i = 0; i < raw.length; i += 2) if (raw[i]!.toLowerCase() === lower) return raw[i + 1]
    return undefined
  }

  has (name: string): boolean {
    return this.get(name) !== undefined
  }

  set (name: string, value: string): void {
    [name, value] = checkedHeader(name, value)
    const lower = name.toLowerCase()
    const raw = this.raw
    let found = false
    for (let i = 0; i < raw.length; i += 2) {
      if (raw[i]!.toLowerCase() !== lower) continue
      if (!found) { raw[i + 1] = String(value); found = true; continue }
      raw.splice(i, 2)
      i -= 2
    }
    if (!found) raw.push(name, value)
  }

  delete (name: string): boolean {
    if (typeof name !== 'string') throw new TypeError(`header name must be a string, not ${name === null ? 'null' : typeof name}`)
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
  if (a === null || typeof a !== 'object') throw new TypeError(`respond() takes { status?, headers?, body? }, not ${a === null ? 'null' : typeof a}`)
  const status = a.status ?? 200
  if (!Number.isInteger(status) || status < 200 || status > 599) throw new TypeError(`respond(): status ${String(status)} is not an integer from 200 to 599`)
  const headers: string[] = []
  const given = a.headers
  if (given !== undefined && given !== null) {
    if (typeof given !== 'object') throw new TypeError(`respond(): headers must be an object or an iterable of [name, value], not ${typeof given}`)
    const pairs = Symbol.iterator in given ? given as Iterable<[string, string]> : Object.entries(given)
    for (const [name, value] of pairs) headers.push(...checkedHeader(name, value))
  }
  const view = new HeaderList(headers)
  // The proxy frames the body itself.
  view.delete('transfer-encoding')
  if (status === 204 || status === 304) {
    // No body, whatever was given (RFC 9110 6.4.1).
    view.delete('content-length')
    return { status, headers, body: Buffer.alloc(0) }
  }
  const supplied = a.body as unknown
  let body: Buffer
  if (supplied === undefined || supplied === null) body = Buffer.alloc(0)
  else if (typeof supplied === 'string') body = Buffer.from(supplied)
  else if (ArrayBuffer.isView(supplied)) body = Buffer.from(supplied.buffer, supplied.byteOffset, supplied.byteLength)
  else throw new TypeError(`respond(): body must be a string, a Buffer or a Uint8Array, not ${typeof supplied}`)
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
  /** How many times respond() was called: more than once in one run is the hook's error (runHooks checks). */
  responses = 0

  constructor (readonly id: number, readonly profile: string, readonly kind: FlowKind, method: string, url: string, requestHeaders: string[]) {
    // Frozen: the types say readonly, and an addon assigning (flow.response.status = 1000) gets a TypeError in its hook, not a silent no-op.
    this.request = Object.freeze({ method, url, headers: new HeaderList(requestHeaders) })
  }

  setResponse (status: number, headers: string[]): void {
    this.response = Object.freeze({ status, headers: new HeaderList(headers) })
  }

  setError (err: { code: string, statusCode: number, message: string }): void {
    this.error = Object.freeze({ code: err.code, status: err.statusCode, message: err.message })
  }

  respond (answer: FlowAnswer): void {
    if (!this.inRequest) throw new Error('flow.respond() can only be called from a request hook')
    this.responses++
    this.answer = toAnswer(answer)
  }
}
