/**
 * Wires the process together. Fastify owns the lifecycle and the admin API;
 * the http.Server is built in its serverFactory so that only origin-form
 * requests reach Fastify's router. Absolute-form (proxied) requests go
 * straight to the proxy handler: the router would match
 * `GET http://evil/_session/...` on its path alone, and routing every
 * proxied request costs about a fifth of the throughput.
 */
import { randomBytes } from 'node:crypto'
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import { isIP, type Socket } from 'node:net'
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { createRequire } from 'node:module'
import type { Logger } from 'pino'
import type { Config } from './config/schema.js'
import { SessionEvents } from './observe/events.js'
import { admitAdminRequest, createAdminGate, registerAdmin } from './admin/index.js'
import { createObservability } from './observe/services.js'
import { ConfigError, SessionProxyError } from './errors.js'
import { readSecret } from './session/host-defaults.js'
import { CookieJarStore } from './session/jar-files.js'
import { ProfileRegistry } from './session/profiles.js'
import { forwardRequest, type ProxyDeps, type ViaIdentity } from './proxy/forward.js'
import { checkVia } from './proxy/headers.js'
import { asProxyError, sendProxyError, sendRawError } from './proxy/respond.js'
import { parseTarget } from './proxy/target.js'
import { handleConnect, type TunnelDeps } from './proxy/tunnel.js'
import { UpstreamPool } from './proxy/upstream.js'
import { createAccessLogger } from './log.js'
import { Interceptor } from './proxy/intercept.js'
import { isAdminPath, parseReverseBase, reverseOptions, reverseTarget } from './proxy/reverse.js'
import { CertificateAuthority } from './proxy/tls/ca.js'
import { LeafMinter } from './proxy/tls/mint.js'
import { forwardUpgrade, type UpgradeLimits } from './proxy/websocket.js'
import { compileHostPattern } from './net/host-pattern.js'
import { join } from 'node:path'
import { ClientAllowlist, isLoopbackHost } from './net/allowlist.js'
import { answerClientError, ClientConnections } from './net/connections.js'
import type { Target } from './proxy/target.js'

function ignore (): void {}

// fastify's own dependencies, resolved from where fastify is installed.
const lazyRequire = createRequire(createRequire(import.meta.url).resolve('fastify'))

export interface SessionProxy {
  readonly app: FastifyInstance
  readonly config: Config
  readonly profiles: ProfileRegistry
  readonly pool: UpstreamPool
  readonly deps: ProxyDeps
  /** Resolves to the URL the proxy listens on. */
  listen: () => Promise<string>
  /** Closes everything at once. */
  close: () => Promise<void>
  /**
   * Graceful stop (SIGTERM/SIGINT): no new connections, tunnels and
   * WebSockets closed, in-flight requests given limits.shutdownTimeoutMs,
   * then jars flushed and everything closed. Resolves to the number of
   * requests that had to be cut.
   */
  shutdown: () => Promise<{ cut: number }>
}

export interface CreateOptions {
  config: Config
  log: Logger
  version: string
}

function proxyUsers (config: Config): Map<string, string> | null {
  if (config.proxyAuth === null) return null
  const users = new Map<string, string>()
  for (const [name, secret] of Object.entries(config.proxyAuth.users)) users.set(name, readSecret(secret, `proxyAuth.users.${name}`))
  return users
}

/** No open proxy: beyond loopback the operator must say who may use it. */
export function assertSafeBinding (config: Config): void {
  if (isLoopbackHost(config.host)) return
  if (config.proxyAuth === null && config.allowClients.length === 0) {
    throw new ConfigError(`refusing to listen on ${config.host}: that is not a loopback address, and neither proxyAuth nor allowClients is configured, so anyone who can reach it could use this proxy and its sessions. Configure proxyAuth (users) or allowClients (IPs/CIDRs), or listen on 127.0.0.1.`)
  }
}

export function createSessionProxy (opts: CreateOptions): SessionProxy {
  const { config, log } = opts
  assertSafeBinding(config)
  const allowlist = config.allowClients.length > 0 ? new ClientAllowlist(config.allowClients) : null
  const files = new CookieJarStore(config.dataDir!)
  try {
    files.init()
  } catch (err) {
    throw new ConfigError(`cannot use data directory ${config.dataDir}: ${(err as Error).message}`, { cause: err })
  }
  const profiles = new ProfileRegistry(config, files, log)
  const reverse = config.reverse === null ? null : parseReverseBase(config.reverse)
  const pool = new UpstreamPool(config.pool, config.connectTo, { upstream: config.upstream, log })
  const ca = CertificateAuthority.loadOrCreate(join(config.dataDir!, 'ca'), log)
  const pseudonym = `session-proxy-${randomBytes(4).toString('hex')}`
  const via: ViaIdentity = { pseudonym, entry: `1.1 ${pseudonym}` }
  const users = proxyUsers(config)
  const events = new SessionEvents(config.events, config.dataDir, log)
  const deps: ProxyDeps = { pool, profiles, log, accessLog: createAccessLogger(log), via, proxyUsers: users, observers: [], events }
  const observe = createObservability({ config, profiles, pool, deps, events, log, version: opts.version })
  const upgradedSockets = new Set<Socket>()
  const track = (socket: Socket): void => {
    upgradedSockets.add(socket)
    socket.once('close', () => upgradedSockets.delete(socket))
  }
  const limits = config.limits
  const connections = new ClientConnections(limits, log, allowlist)
  const upgradeLimits: UpgradeLimits = {
    maxClientBufferBytes: limits.maxClientBufferBytes,
    onWebSocket: (client, upstream) => connections.addStream(client, upstream)
  }
  const tunnelDeps: TunnelDeps = {
    log,
    users,
    allowedPorts: config.connect.allowedPorts,
    interceptor: config.connect.intercept
      ? new Interceptor(deps, new LeafMinter(ca), log, { maxHeaderBytes: limits.maxHeaderBytes, clientHeadersTimeoutMs: limits.clientHeadersTimeoutMs, clientKeepAliveTimeoutMs: limits.clientKeepAliveTimeoutMs, upgrade: upgradeLimits }, connections)
      : null,
    exclude: config.connect.exclude.map(compileHostPattern),
    pool,
    maxBufferBytes: limits.maxClientBufferBytes,
    onTunnel: (client, upstream) => connections.addStream(client, upstream)
  }
  const adminGate = createAdminGate({ config, proxyUsers: users })
  const forwardOnly = reverse !== null && !config.reverseForward
  const ownAddress = `${config.host}:${config.port}`

  /** Reverse mode is not an open forward proxy: only its own upstream may be named in absolute form. */
  const reverseRefusal = (what: string): SessionProxyError => new SessionProxyError('SP_REVERSE_ONLY', 403,
    `this proxy runs in reverse mode for ${reverse!.origin} and does not ${what}; send origin-form requests (curl http://${ownAddress}/path), or set reverseForward: true (--reverse-forward) to also act as a forward proxy`)
  const isReverseBase = (t: Target): boolean => t.host === reverse!.host && t.port === reverse!.port

  const onProxyRequest = (req: IncomingMessage, res: ServerResponse): void => {
    let target
    try {
      target = parseTarget(req.url!)
    } catch (err) {
      sendProxyError(res, asProxyError(err))
      return
    }
    if (forwardOnly && !isReverseBase(target)) {
      sendProxyError(res, reverseRefusal(`forward requests to ${target.authority}`))
      log.info({ method: req.method, host: target.authority, status: 403, error: 'SP_REVERSE_ONLY' }, 'rejected')
      return
    }
    forwardRequest(deps, req, res, target)
  }

  /** A socket Node hands over raw (CONNECT, upgrade): its error path first, then the checks shared by both. */
  const takeRaw = (socket: Socket, what: string): boolean => {
    socket.on('error', ignore)
    connections.markUpgraded(socket)
    track(socket)
    if (connections.isDraining) {
      sendRawError(socket, new SessionProxyError('SP_SHUTTING_DOWN', 503, `the proxy is shutting down and takes no new ${what}`))
      return false
    }
    return true
  }

  const app = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    // The schema compilers (ajv, fast-json-stringify) load only if a route
    // ever declares a schema: requiring them eagerly cost ~40 ms of start-up.
    schemaController: {
      compilersFactory: {
        buildValidator: (...args: unknown[]) => (lazyRequire('@fastify/ajv-compiler') as () => (...a: unknown[]) => unknown)()(...args),
        buildSerializer: (...args: unknown[]) => (lazyRequire('@fastify/fast-json-stringify-compiler') as () => (...a: unknown[]) => unknown)()(...args)
      }
    } as unknown as FastifyServerOptions['schemaController'],
    forceCloseConnections: true,
    clientErrorHandler: answerClientError,
    serverFactory: (fastifyHandler) => {
      const server = http.createServer({
        maxHeaderSize: limits.maxHeaderBytes,
        keepAliveTimeout: limits.clientKeepAliveTimeoutMs,
        requestTimeout: 0,
        headersTimeout: limits.clientHeadersTimeoutMs,
        // Node checks headersTimeout only this often (default 30 s).
        connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(limits.clientHeadersTimeoutMs / 4)))
      }, (req, res) => {
        if (req.url!.charCodeAt(0) === 47 /* '/' */) {
          // A proxied request that came back to us as origin-form is a loop.
          const via = req.headers.via
          if (via !== undefined) {
            try { checkVia(via, pseudonym) } catch (err) { sendProxyError(res, asProxyError(err)); return }
          }
          if (reverse !== null && !isAdminPath(req.url!)) {
            connections.begin(req, res, true)
            forwardRequest(deps, req, res, reverseTarget(reverse, req.url!), reverseOptions(reverse, req, ownAddress))
            return
          }
          connections.begin(req, res, false)
          if (!admitAdminRequest(req, res, adminGate)) return
          fastifyHandler(req, res)
        } else {
          connections.begin(req, res, true)
          onProxyRequest(req, res)
        }
      })
      connections.install(server)
      server.on('error', (err: NodeJS.ErrnoException) => {
        // Listen errors are reported by listen(); afterwards (EMFILE on accept) the server keeps going.
        if (server.listening) log.error({ err: { code: err.code, message: err.message } }, 'server error')
      })
      server.on('connect', (req: IncomingMessage, socket: Socket, head: Buffer) => {
        if (!takeRaw(socket, 'tunnels')) return
        if (forwardOnly) {
          sendRawError(socket, reverseRefusal('accept CONNECT'))
          log.info({ method: 'CONNECT', host: (req.url ?? '').slice(0, 200), status: 403, error: 'SP_REVERSE_ONLY' }, 'rejected')
          return
        }
        handleConnect(tunnelDeps, req, socket, head)
      })
      server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
        if (!takeRaw(socket, 'WebSockets')) return
        const url = req.url!
        if (url.charCodeAt(0) === 47 /* '/' */) {
          if (reverse !== null && !isAdminPath(url)) forwardUpgrade(deps, req, socket, head, reverseTarget(reverse, url), reverseOptions(reverse, req, ownAddress), upgradeLimits)
          else sendRawError(socket, new SessionProxyError('SP_UPGRADE_UNSUPPORTED', 501, 'the admin API has no WebSocket endpoints'))
          return
        }
        let target
        try {
          // Some clients write ws:// or wss:// in the request line; the handshake itself is HTTP.
          target = parseTarget(url.replace(/^ws(s?):\/\//i, 'http$1://'))
        } catch (err) {
          sendRawError(socket, asProxyError(err))
          return
        }
        if (forwardOnly && !isReverseBase(target)) {
          sendRawError(socket, reverseRefusal(`forward requests to ${target.authority}`))
          return
        }
        forwardUpgrade(deps, req, socket, head, target, undefined, upgradeLimits)
      })
      return server
    }
  })

  registerAdmin(app, { config, log, profiles, deps, observe, certPem: ca.certPem, version: opts.version })

  app.addHook('onClose', async () => {
    for (const s of upgradedSockets) s.destroy()
    await Promise.all([pool.close(), profiles.close(), observe.close()])
  })

  return {
    app,
    config,
    profiles,
    pool,
    deps,
    listen: async () => {
      const address = await app.listen({ host: config.host, port: config.port })
      void address
      const a = app.server.address()
      if (a === null || typeof a === 'string') return String(a)
      const host = isIP(a.address) === 6 ? `[${a.address}]` : a.address
      return `http://${host}:${a.port}`
    },
    close: async () => { await app.close() },
    shutdown: async () => {
      // Stop accepting first; app.close() below closes the server for good.
      app.server.close()
      const result = await connections.drain(app.server, limits.shutdownTimeoutMs)
      await app.close()
      return result
    }
  }
}
