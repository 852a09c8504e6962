/**
 * Admin API for observability: session events (JSON and SSE), explain,
 * traffic capture and its HAR export, Prometheus metrics, and deleting one
 * cookie (for the web page's jar table).
 */
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { BadRequestError, SessionProxyError } from '../errors.js'
import { toHar } from '../observe/har.js'
import { explain, parseExplainTarget } from '../observe/explain.js'
import { PROM_CONTENT_TYPE } from '../observe/prom-text.js'
import type { Observability } from '../observe/services.js'
import { validateCaptureSettings } from '../observe/capture.js'
import { assertProfileName, type ProfileRegistry } from '../session/profiles.js'
import { cookieToJson, findProfile } from './routes.js'
import { streamEvents, wantsEventStream } from './sse.js'

export interface ObserveRouteDeps {
  profiles: ProfileRegistry
  observe: Observability
  /** limits.maxAdminStreamBufferBytes */
  streamBufferBytes: number
  log?: Logger
}

interface ProfileParams { p: string }
interface EventsQuery { since?: string, limit?: string }
interface ExplainQuery { url?: string, method?: string, site?: string }
interface CookieParams { p: string, domain: string, path: string, name: string }

function intParam (value: string | undefined, name: string, min: number): number | undefined {
  if (value === undefined || value === '') return undefined
  if (!/^\d{1,15}$/.test(value) || Number(value) < min) throw new BadRequestError('SP_BAD_QUERY', `${name} must be an integer >= ${min}`)
  return Number(value)
}

export class CookieNotFoundError extends SessionProxyError {
  constructor (what: string) {
    super('SP_COOKIE_NOT_FOUND', 404, `no cookie ${what}`)
  }
}

export async function observeRoutes (app: FastifyInstance, deps: ObserveRouteDeps): Promise<void> {
  const { observe } = deps

  // Any valid profile name, existing or not yet: a client can subscribe
  // before the profile's first request.
  app.get<{ Params: ProfileParams, Querystring: EventsQuery }>('/_session/profiles/:p/events', async (req, reply) => {
    const name = req.params.p
    assertProfileName(name)
    const since = intParam(req.query.since, 'since', 0)
    const limit = intParam(req.query.limit, 'limit', 0)
    if (wantsEventStream(req)) {
      streamEvents(req, reply, observe.events, name, since, { maxBufferedBytes: deps.streamBufferBytes, log: deps.log })
      return reply
    }
    return observe.events.list(name, { since, limit })
  })

  app.get<{ Params: ProfileParams, Querystring: ExplainQuery }>('/_session/profiles/:p/explain', async (req) => {
    // "default" always exists: it is what a client without a profile gets.
    const profile = req.params.p === 'default' ? deps.profiles.get('default') : findProfile(deps, req.params.p)
    if (req.query.url === undefined || req.query.url === '') throw new BadRequestError('SP_EXPLAIN_BAD_URL', 'give the URL to explain: ?url=https://host/path')
    const target = parseExplainTarget(req.query.url, req.query.method ?? 'GET', req.query.site ?? 'same-site')
    return explain(profile, target, observe.explainContributors)
  })

  app.get<{ Params: ProfileParams }>('/_session/profiles/:p/capture', async (req) => {
    const profile = findProfile(deps, req.params.p)
    return { profile: profile.name, ...observe.capture.settings(profile.name), entries: observe.capture.entries(profile.name).length }
  })

  app.put<{ Params: ProfileParams, Body: unknown }>('/_session/profiles/:p/capture', async (req) => {
    const profile = deps.profiles.get(req.params.p)
    const settings = validateCaptureSettings(req.body, observe.capture.settings(profile.name))
    observe.capture.configure(profile.name, settings)
    return { profile: profile.name, ...settings, entries: observe.capture.entries(profile.name).length }
  })

  app.get<{ Params: ProfileParams, Querystring: { download?: string } }>('/_session/profiles/:p/har', async (req, reply) => {
    const profile = findProfile(deps, req.params.p)
    reply.type('application/json; charset=utf-8')
    if (req.query.download !== undefined) reply.header('content-disposition', `attachment; filename="${profile.name}.har"`)
    return toHar(observe.capture.entries(profile.name), observe.version)
  })

  app.delete<{ Params: ProfileParams }>('/_session/profiles/:p/har', async (req) => {
    const profile = findProfile(deps, req.params.p)
    return { profile: profile.name, deleted: observe.capture.clear(profile.name) }
  })

  // domain and path are URL-encoded segments: /cookies/example.com/%2Fapp/sid
  app.delete<{ Params: CookieParams }>('/_session/profiles/:p/cookies/:domain/:path/:name', async (req) => {
    const profile = findProfile(deps, req.params.p)
    const { domain, path, name } = req.params
    const cookie = profile.jar.cookies().find((c) => c.domain === domain && c.path === path && c.key === name)
    if (cookie === undefined) throw new CookieNotFoundError(`${name} for domain ${domain} and path ${path} in profile "${profile.name}"`)
    profile.jar.store.removeCookie(domain, path, name, () => {})
    await profile.pendingWrite
    return { profile: profile.name, deleted: cookieToJson(cookie) }
  })

  app.get('/_session/metrics', async (_req, reply) => {
    if (observe.metrics === null) {
      reply.code(404).type('text/plain; charset=utf-8')
      return 'session-proxy: metrics are disabled (metrics.enabled: false)\n'
    }
    reply.type(PROM_CONTENT_TYPE)
    return observe.metrics.render()
  })
}
