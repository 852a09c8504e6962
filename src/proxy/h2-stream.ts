/**
 * One HTTP/2 stream as the request/response pair the HTTP/1.1 path takes.
 * Node's http2 compatibility API (Http2ServerRequest/Http2ServerResponse)
 * already offers most of what forwardRequest uses: method, url (`:path`),
 * a readable body, writeHead/write/end with backpressure ('drain'),
 * 'close', destroy, writeEarlyHints. What differs is adapted here, so the
 * one exchange path (src/proxy/forward.ts) runs unchanged:
 * - rawHeaders: the pseudo-headers are dropped and `:authority` becomes
 *   Host; a body without Content-Length (HTTP/2 frames it by DATA frames
 *   and END_STREAM) is announced as `Transfer-Encoding: chunked`, which is
 *   how the HTTP/1.1 path knows a body follows (the proxy drops the header
 *   itself; undici frames the upstream body as it needs);
 * - writeHead: HTTP/2 has no reason phrase (Node warns on one) and refuses
 *   connection-specific headers (RFC 9113 8.2.2) by throwing: the phrase is
 *   ignored and those headers are left out;
 * - statusMessage: ignored, for the same reason;
 * - destroyed: the compat response has none (see below).
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http'
import http2, { type Http2ServerRequest } from 'node:http2'

/** Headers HTTP/2 forbids in a message (RFC 9113 8.2.2); Node throws on them. */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade'])

/**
 * The HTTP/1.1-shaped header list of an HTTP/2 request: no pseudo-headers,
 * Host from `:authority` (unless the client sent a Host of its own), and
 * `Transfer-Encoding: chunked` when a body follows without Content-Length.
 */
export function h1RawHeaders (raw: readonly string[], bodyFollows: boolean): string[] {
  const out: string[] = []
  let authority: string | undefined
  let host = false
  let length = false
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!
    if (name.charCodeAt(0) === 58 /* ':' */) {
      if (name === ':authority') authority = raw[i + 1]
      continue
    }
    const lower = name.toLowerCase()
    if (lower === 'host') host = true
    else if (lower === 'content-length') length = true
    out.push(name, raw[i + 1]!)
  }
  if (!host && authority !== undefined) out.unshift('host', authority)
  if (bodyFollows && !length) out.push('transfer-encoding', 'chunked')
  return out
}

/** Leaves out the headers HTTP/2 cannot carry, from a flat list or an object. */
function h2Headers (headers: OutgoingHttpHeaders | readonly string[] | undefined): OutgoingHttpHeaders | string[] | undefined {
  if (headers === undefined) return undefined
  if (Array.isArray(headers)) {
    const flat = headers as readonly string[]
    let out: string[] | null = null
    for (let i = 0; i < flat.length; i += 2) {
      const drop = CONNECTION_SPECIFIC.has(flat[i]!.toLowerCase())
      if (drop && out === null) out = flat.slice(0, i)
      else if (!drop && out !== null) out.push(flat[i]!, flat[i + 1]!)
    }
    return out ?? (flat as string[])
  }
  const object = headers as OutgoingHttpHeaders
  let out: OutgoingHttpHeaders | null = null
  for (const name of Object.keys(object)) {
    if (CONNECTION_SPECIFIC.has(name.toLowerCase())) {
      out ??= { ...object }
      delete out[name]
    }
  }
  return out ?? object
}

/** The compat response with the HTTP/1.1 path's writeHead (flat lists, a reason phrase). */
export class H2Response extends http2.Http2ServerResponse {
  override writeHead (statusCode: number, reasonOrHeaders?: string | OutgoingHttpHeaders | readonly string[], headers?: OutgoingHttpHeaders | readonly string[]): this {
    const list = typeof reasonOrHeaders === 'string' ? headers : reasonOrHeaders ?? headers
    // Node's typings name only the object form; the compat writeHead takes flat lists as well.
    return super.writeHead(statusCode, h2Headers(list) as OutgoingHttpHeaders | undefined)
  }
}
// There is no reason phrase in HTTP/2: reading gives '', setting does nothing
// (Node's own accessor warns on both).
Object.defineProperty(H2Response.prototype, 'statusMessage', {
  configurable: true,
  get: () => '',
  set: () => {}
})

// The compat response has no `destroyed`: the exchange path reads it to
// learn that the client went away before it listened for 'close' (a stream
// the client reset right after its HEADERS). Undefined there, the upstream
// request went on, and its response waited for a 'drain' that never comes,
// holding an upstream connection for ever.
Object.defineProperty(H2Response.prototype, 'destroyed', {
  configurable: true,
  get (this: H2Response): boolean {
    const stream = this.stream as http2.ServerHttp2Stream | undefined
    return stream === undefined || stream.destroyed || stream.closed
  }
})

/**
 * The request as the HTTP/1.1 path reads it. Everything but rawHeaders is
 * Node's own compat object; rawHeaders is computed once, here.
 */
export function asH1Request (req: Http2ServerRequest): IncomingMessage {
  const raw = h1RawHeaders(req.rawHeaders, !req.stream.endAfterHeaders)
  Object.defineProperty(req, 'rawHeaders', { configurable: true, enumerable: true, value: raw })
  // Http2ServerRequest and IncomingMessage share the members the exchange path uses (see above).
  return req as unknown as IncomingMessage
}

/** The response as the HTTP/1.1 path writes it (see H2Response). */
export function asH1Response (res: H2Response): ServerResponse {
  return res as unknown as ServerResponse
}
