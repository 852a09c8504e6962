/**
 * The captured exchanges of a profile for the web page, each joined to the
 * session events it caused (by request id: the `requestId` of an event is the
 * `requestId` of its exchange) and marked with what the autopilot did:
 *
 * - `sent-with-session`: the request went out with a Cookie or Authorization header;
 * - `logged-out`: the upstream answered it logged out (session.loggedOut);
 * - `renewed`: the session was renewed for it (a login it ran or joined succeeded);
 * - `replayed`: it was sent again (request.replayed, after a login or a CSRF refresh).
 *
 * Headers are the captured ones, redacted when captured (capture.redact).
 */
import type { FastifyInstance } from 'fastify'
import { BadRequestError, SessionProxyError } from '../errors.js'
import type { CapturedExchange } from '../observe/capture.js'
import type { SessionEvent } from '../observe/event-types.js'
import type { Observability } from '../observe/services.js'
import type { ProfileRegistry } from '../session/profiles.js'
import { RENEWED_HEADER } from '../proxy/managed-exchange.js'
import { findProfile } from './routes.js'

export interface ExchangeRouteDeps {
  profiles: ProfileRegistry
  observe: Observability
}

export type ExchangeMark = 'sent-with-session' | 'logged-out' | 'renewed' | 'replayed'

export interface ExchangeSummary {
  requestId: number
  method: string
  url: string
  status: number
  profile: string
  /** ISO 8601 start time. */
  time: string
  totalMs: number
  marks: ExchangeMark[]
  /** The seq and type of each held event the exchange caused. */
  events: Array<{ seq: number, type: string }>
  error: { code: string, message: string } | null
}

export interface ExchangeDetail extends ExchangeSummary {
  requestHeaders: Array<[string, string]>
  responseHeaders: Array<[string, string]>
  redacted: boolean
  responseBytes: number
}

export class ExchangeNotFoundError extends SessionProxyError {
  constructor (profile: string, id: string) {
    super('SP_EXCHANGE_NOT_FOUND', 404, `no captured exchange ${id.slice(0, 20)} in profile "${profile}" (capture keeps the last capture.maxEntries)`)
  }
}

function hasHeader (headers: ReadonlyArray<[string, string]>, names: ReadonlySet<string>): boolean {
  for (const [n] of headers) if (names.has(n.toLowerCase())) return true
  return false
}

const SESSION_HEADERS: ReadonlySet<string> = new Set(['cookie', 'authorization'])
const RENEWED: ReadonlySet<string> = new Set([RENEWED_HEADER])

/** The marks of one exchange from its headers and the events it caused. */
export function marksOf (x: CapturedExchange, events: readonly SessionEvent[]): ExchangeMark[] {
  const types = new Set(events.map((e) => e.type))
  const marks: ExchangeMark[] = []
  if (hasHeader(x.requestHeaders, SESSION_HEADERS)) marks.push('sent-with-session')
  if (types.has('session.loggedOut')) marks.push('logged-out')
  // The managed path answers a renewed request with RENEWED_HEADER, also when it joined another request's login.
  if (hasHeader(x.responseHeaders, RENEWED) || (types.has('session.loggedOut') && types.has('login.succeeded'))) marks.push('renewed')
  if (types.has('request.replayed')) marks.push('replayed')
  return marks
}

function eventsByRequest (events: readonly SessionEvent[]): Map<number, SessionEvent[]> {
  const out = new Map<number, SessionEvent[]>()
  for (const e of events) {
    if (e.requestId === null) continue
    let list = out.get(e.requestId)
    if (list === undefined) { list = []; out.set(e.requestId, list) }
    list.push(e)
  }
  return out
}

function summary (x: CapturedExchange, events: readonly SessionEvent[]): ExchangeSummary {
  return {
    requestId: x.requestId,
    method: x.method,
    url: x.url,
    status: x.status,
    profile: x.profile,
    time: new Date(x.startedAt).toISOString(),
    totalMs: Math.round(x.totalMs * 10) / 10,
    marks: marksOf(x, events),
    events: events.map((e) => ({ seq: e.seq, type: e.type })),
    error: x.error
  }
}

export async function exchangeRoutes (app: FastifyInstance, deps: ExchangeRouteDeps): Promise<void> {
  const { observe } = deps
  const held = (profile: string): Map<number, SessionEvent[]> =>
    eventsByRequest(observe.events.list(profile, { limit: observe.events.config.maxPerProfile }).events)

  // Newest first, as the page lists them.
  app.get<{ Params: { p: string } }>('/_session/profiles/:p/exchanges', async (req) => {
    const profile = findProfile(deps, req.params.p)
    const byRequest = held(profile.name)
    const entries = observe.capture.entries(profile.name)
    const exchanges: ExchangeSummary[] = []
    for (let i = entries.length - 1; i >= 0; i--) exchanges.push(summary(entries[i]!, byRequest.get(entries[i]!.requestId) ?? []))
    return { profile: profile.name, capture: observe.capture.settings(profile.name).enabled, exchanges }
  })

  app.get<{ Params: { p: string, id: string } }>('/_session/profiles/:p/exchanges/:id', async (req): Promise<ExchangeDetail> => {
    const profile = findProfile(deps, req.params.p)
    if (!/^\d{1,15}$/.test(req.params.id)) throw new BadRequestError('SP_BAD_QUERY', 'the exchange id is the request id, a number')
    const id = Number(req.params.id)
    const x = observe.capture.entries(profile.name).find((e) => e.requestId === id)
    if (x === undefined) throw new ExchangeNotFoundError(profile.name, req.params.id)
    return {
      ...summary(x, held(profile.name).get(id) ?? []),
      requestHeaders: x.requestHeaders,
      responseHeaders: x.responseHeaders,
      redacted: x.redacted,
      responseBytes: x.responseBytes
    }
  })
}
