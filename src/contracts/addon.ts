/**
 * The public addon API, exported from the package as `session-proxy/addon`.
 * This file has no imports: it is compiled on its own into the declaration
 * file users get (dist/contracts/addon.d.ts), so it must stay self-contained.
 *
 * An addon is an ES module whose default export is an `Addon`, or a function
 * (sync or async) returning one; the function is called once at start with
 * an `AddonContext`. Every hook is optional and may be sync or async.
 */

/** How the request reached the proxy. */
export type FlowKind = 'http' | 'https' | 'reverse' | 'websocket' | 'login'

/** A header list with case-insensitive names; iterating yields `[name, value]` pairs in order. */
export interface FlowHeaders extends Iterable<[string, string]> {
  /** The first value of the header (several values of one name are not joined), or undefined. */
  get: (name: string) => string | undefined
  /** Replaces every value of the header with this one (adds it when absent). */
  set: (name: string, value: string) => void
  /** Removes every value of the header; true when there was one. */
  delete: (name: string) => boolean
  has: (name: string) => boolean
  entries: () => IterableIterator<[string, string]>
}

export interface FlowRequest {
  readonly method: string
  /** The URL as the client asked for it: `https://` inside an intercepted tunnel; the upstream URL in reverse mode. */
  readonly url: string
  /** The headers as they will go upstream: cookies, host defaults and auth already added. */
  readonly headers: FlowHeaders
}

export interface FlowResponse {
  readonly status: number
  /** The headers as they will go to the client. */
  readonly headers: FlowHeaders
}

export interface FlowError {
  /** The `x-session-proxy-error` code (docs/errors.md), e.g. SP_UPSTREAM_REFUSED. */
  readonly code: string
  readonly status: number
  readonly message: string
}

/** What `flow.respond()` sends to the client instead of asking the upstream. */
export interface FlowAnswer {
  /** Default 200. */
  status?: number
  headers?: Record<string, string> | Iterable<[string, string]>
  body?: string | Uint8Array
}

export interface Flow {
  /** The request id, the same one events, capture and the access log show. */
  readonly id: number
  /** The profile name. */
  readonly profile: string
  readonly kind: FlowKind
  readonly request: FlowRequest
  /** Set once the response head has arrived (in `response` hooks). */
  readonly response: FlowResponse | undefined
  /** Set when the exchange failed (in `error` hooks). */
  readonly error: FlowError | undefined
  /** From a `request` hook: answer the client with this; the upstream is not contacted. */
  respond: (answer: FlowAnswer) => void
}

/** What `response` hooks get: the response head is there. */
export interface ResponseFlow extends Flow {
  readonly response: FlowResponse
}

/** What `error` hooks get: the failure is there. */
export interface ErrorFlow extends Flow {
  readonly error: FlowError
}

export type Hook<F extends Flow = Flow> = (flow: F) => void | Promise<void>

export interface Addon {
  /** Named in logs and in SP_ADDON_ERROR messages; the file name when absent. */
  name?: string
  /**
   * The profiles whose flows this addon sees: names or glob patterns
   * (`vu-*`, `load-?`), as `profiles:` keys are. Every profile when absent.
   * A profile the addon does not apply to runs none of its hooks and pays
   * nothing for it: each profile's hook list is compiled once.
   */
  profiles?: readonly string[]
  /** Before the request goes upstream, after the proxy added cookies, defaults and auth. */
  request?: Hook
  /** When the response head has arrived, before the client sees it. */
  response?: Hook<ResponseFlow>
  /** When the exchange failed. What it throws is logged; the client's answer is already decided. */
  error?: Hook<ErrorFlow>
}

/** A pino-like logger, already tagged with the addon's name. */
export interface AddonLogger {
  debug: (obj: object | string, msg?: string) => void
  info: (obj: object | string, msg?: string) => void
  warn: (obj: object | string, msg?: string) => void
  error: (obj: object | string, msg?: string) => void
}

export interface AddonContext {
  /** The proxy's effective configuration, read-only. */
  readonly config: Readonly<Record<string, unknown>>
  readonly log: AddonLogger
}

export type AddonFactory = (context: AddonContext) => Addon | Promise<Addon>

/** What an addon module's default export may be. */
export type AddonExport = Addon | AddonFactory
