/**
 * Everything under /_session/ in one place: who may reach the admin API
 * (the gate, run on the raw request before Fastify sees it), the error and
 * not-found handlers, the admin access log line, and the routes.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import type { Config } from '../config/schema.js'
import { BadRequestError } from '../errors.js'
import type { Observability } from '../observe/services.js'
import type { ProxyDeps } from '../contracts/proxy-deps.js'
import { ERROR_HEADER } from '../proxy/respond.js'
import type { ProfileRegistry } from '../session/profiles.js'
import { describeAdminError, INTERNAL_MESSAGE, writeAdminError } from './admin-errors.js'
import { caRoute } from './ca-route.js'
import { exchangeRoutes } from './exchange-routes.js'
import { checkAdminRequest, compileGateRules, type GateRules } from './gate.js'
import { lifecycleRoutes } from './lifecycle-routes.js'
import { loginRoute } from './login-route.js'
import { observeRoutes } from './observe-routes.js'
import { pageRoutes } from './page-route.js'
import { adminRoutes } from './routes.js'

export { ADMIN_HEADER } from './gate.js'

export interface AdminGateOptions {
  config: Config
  /**
   * proxyAuth users. Not admin credentials: a Basic header is an ambient
   * credential a browser replays cross-site, and a proxy user is not an
   * administrator. Beyond loopback the admin API takes the bearer token.
   */
  proxyUsers: ReadonlyMap<string, string> | null
  /** Where admin.token's { env } is read; process.env by default. */
  env?: NodeJS.ProcessEnv
}

export interface AdminGate {
  readonly rules: GateRules
}

/** Throws ConfigError (at start-up) for a bad admin.hosts entry or an unreadable admin.token. */
export function createAdminGate (opts: AdminGateOptions): AdminGate {
  return { rules: compileGateRules(opts.config, opts.env) }
}

/**
 * Runs on every origin-form admin request before Fastify routes it. Answers
 * the refusal itself and returns false, or returns true to let it through.
 */
export function admitAdminRequest (req: IncomingMessage, res: ServerResponse, gate: AdminGate): boolean {
  const refusal = checkAdminRequest(gate.rules, req)
  if (refusal === null) return true
  writeAdminError(res, refusal)
  return false
}

/** The admin API's error handler: the described error, or SP_INTERNAL with the details in the log only. */
export function adminErrorHandler (log: Logger): (err: unknown, req: FastifyRequest, reply: FastifyReply) => void {
  return (err, req, reply) => {
    const described = describeAdminError(err)
    if (described === null) {
      log.error({ err, method: req.method, url: req.url }, 'admin request failed')
      void reply.code(500).header(ERROR_HEADER, 'SP_INTERNAL').send({ error: 'SP_INTERNAL', message: INTERNAL_MESSAGE })
      return
    }
    if (described.status >= 500) log.warn({ err, method: req.method, url: req.url }, 'admin request failed')
    void reply.code(described.status).header(ERROR_HEADER, described.body.error).send(described.body)
  }
}

export interface AdminOptions {
  config: Config
  log: Logger
  profiles: ProfileRegistry
  deps: ProxyDeps
  observe: Observability
  certPem: string
  version: string
}

export function registerAdmin (app: FastifyInstance, opts: AdminOptions): void {
  const { config, log, profiles, deps, observe } = opts
  const bodyLimit = config.limits.maxAdminBodyBytes
  app.setErrorHandler(adminErrorHandler(log))
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).header(ERROR_HEADER, 'SP_ADMIN_NOT_FOUND').header('x-content-type-options', 'nosniff').type('text/plain; charset=utf-8').send(
      req.url.startsWith('/_session')
        ? `session-proxy: no admin route ${req.method} ${req.url.slice(0, 200)}\n`
        : 'session-proxy: this is an HTTP forward proxy. Send requests through it (curl -x http://127.0.0.1:8080 http://example.com/); the admin API is under /_session/.\n')
  })
  // Every route states its body limit rather than inheriting Fastify's default.
  app.addHook('onRoute', (route) => {
    route.bodyLimit ??= bodyLimit
  })
  // A repeated query parameter arrives as an array, which no route expects.
  app.addHook('preValidation', async (req) => {
    const query = req.query as Record<string, unknown> | undefined
    for (const [name, value] of Object.entries(query ?? {})) {
      if (typeof value !== 'string') throw new BadRequestError('SP_BAD_QUERY', `query parameter ${JSON.stringify(name.slice(0, 40))} is given more than once`)
    }
  })
  app.addHook('onResponse', async (req, reply) => {
    log.info({ method: req.method, url: req.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime * 100) / 100 }, 'admin')
  })
  void app.register(adminRoutes, { profiles, version: opts.version, startedAt: Date.now(), bodyLimit })
  void app.register(caRoute, { certPem: opts.certPem })
  void app.register(loginRoute, { deps })
  void app.register(observeRoutes, { profiles, observe, streamBufferBytes: config.limits.maxAdminStreamBufferBytes, log })
  void app.register(pageRoutes)
  void app.register(lifecycleRoutes, { profiles, config, events: observe.events })
  void app.register(exchangeRoutes, { profiles, observe })
}
