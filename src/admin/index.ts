/**
 * Everything under /_session/ in one place: who may reach the admin API
 * (the gate, run on the raw request before Fastify sees it), the error and
 * not-found handlers, the admin access log line, and the routes.
 */
import { timingSafeEqual } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import type { Config } from '../config/schema.js'
import { SessionProxyError } from '../errors.js'
import { isLoopbackHost } from '../net/allowlist.js'
import type { Observability } from '../observe/services.js'
import type { ProxyDeps } from '../proxy/forward.js'
import type { ProfileRegistry } from '../session/profiles.js'
import { caRoute } from './ca-route.js'
import { loginRoute } from './login-route.js'
import { observeRoutes } from './observe-routes.js'
import { pageRoutes } from './page-route.js'
import { adminRoutes } from './routes.js'

export interface AdminGateOptions {
  config: Config
  /** proxyAuth users (name to password), or null when auth is off. */
  proxyUsers: ReadonlyMap<string, string> | null
}

export interface AdminGate {
  readonly users: ReadonlyMap<string, string> | null
}

export function createAdminGate (opts: AdminGateOptions): AdminGate {
  return { users: opts.proxyUsers }
}

/**
 * Runs on every origin-form admin request before Fastify routes it. Answers
 * the refusal itself and returns false, or returns true to let it through.
 */
export function admitAdminRequest (req: IncomingMessage, res: ServerResponse, gate: AdminGate): boolean {
  if (gate.users !== null && !adminAuthorized(req, gate.users)) {
    res.writeHead(401, { 'www-authenticate': 'Basic realm="session-proxy admin"', 'content-type': 'application/json' })
    res.end(JSON.stringify({ error: 'SP_ADMIN_AUTH_REQUIRED', message: 'the admin API needs Basic credentials of a proxyAuth user' }))
    return false
  }
  return true
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
  const { log, profiles, deps, observe } = opts
  app.setErrorHandler((err, _req, reply) => {
    const e = err as Error & { statusCode?: number, code?: string, validation?: unknown }
    if (err instanceof SessionProxyError) {
      void reply.code(err.statusCode).send({ error: err.code, message: err.message })
    } else if (e.validation !== undefined || (e.statusCode !== undefined && e.statusCode < 500)) {
      void reply.code(e.statusCode ?? 400).send({ error: e.code ?? 'SP_BAD_REQUEST', message: e.message })
    } else {
      log.error({ err }, 'admin request failed')
      void reply.code(500).send({ error: 'SP_INTERNAL', message: e.message })
    }
  })
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).type('text/plain; charset=utf-8').send(
      req.url.startsWith('/_session')
        ? `session-proxy: no admin route ${req.method} ${req.url}\n`
        : 'session-proxy: this is an HTTP forward proxy. Send requests through it (curl -x http://127.0.0.1:8080 http://example.com/); the admin API is under /_session/.\n')
  })
  app.addHook('onResponse', async (req, reply) => {
    log.info({ method: req.method, url: req.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime * 100) / 100 }, 'admin')
  })
  void app.register(adminRoutes, { profiles, version: opts.version, startedAt: Date.now() })
  void app.register(caRoute, { certPem: opts.certPem })
  void app.register(loginRoute, { deps })
  void app.register(observeRoutes, { profiles, observe })
  void app.register(pageRoutes)

}

function adminAuthorized (req: IncomingMessage, users: ReadonlyMap<string, string>): boolean {
  const remote = req.socket.remoteAddress ?? ''
  if (isLoopbackHost(remote)) return true
  const header = req.headers.authorization
  if (header === undefined || !header.toLowerCase().startsWith('basic ')) return false
  const decoded = Buffer.from(header.slice(6).trim(), 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  const expected = users.get(decoded.slice(0, colon))
  if (colon === -1 || expected === undefined) return false
  const a = Buffer.from(decoded.slice(colon + 1))
  const b = Buffer.from(expected)
  return a.length === b.length && timingSafeEqual(a, b)
}
