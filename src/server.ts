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
import { matchProfileSettings } from './session/profile-settings.js'
import { admitAdminRequest, createAdminGate, registerAdmin } from './admin/index.js'
import { createObservability } from './observe/services.js'
import { ConfigError, SessionProxyError } from './errors.js'
import { readSecret } from './session/host-defaults.js'
import { openJarStore } from './session/store/open-store.js'
import { assertProfileName, ProfileRegistry } from './session/profiles.js'
import { parseProxyAuthorization, PROFILE_HEADER, resolveProfileName } from './session/resolve-profile.js'
import { forwardRequest } from './proxy/forward.js'
import type { ViaIdentity } from './contracts/exchange.js'
import type { ProxyDeps } from './contracts/proxy-deps.js'
import { checkVia } from './proxy/headers.js'
import { asProxyError, sendProxyError, sendRawError } from './proxy/respond.js'
import { parseTarget } from './proxy/target.js'
import { handleConnect, type TunnelDeps } from './proxy/tunnel.js'
import { UpstreamPool } from './proxy/upstream.js'
import { createAccessLogger, createProxiedLine } from './log.js'
import { Interceptor } from './proxy/intercept.js'
import { isAdminPath, parseReverseBase, reverseOptions, reverseTarget } from './proxy/reverse.js'
import { CertificateAuthority } from './proxy/tls/ca.js'
import { LeafMinter } from './proxy/tls/mint.js'
import { forwardUpgrade, type UpgradeLimits } from './proxy/websocket.js'
import { answerClientErrorOrH2, h2cRefusal, isH2cUpgrade } from './proxy/h2-refuse.js'
import { compileHostPattern } from './net/host-pattern.js'
import { join } from 'node:path'
import { ClientAllowlist, isLoopbackHost } from './net/allowlist.js'
import { ClientConnections } from './net/connections.js'
import type { Target } from './proxy/target.js'
import { compileHooks, type LoadedAddon } from './pipeline/hooks.js'

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
  /** The addons loaded at start (src/pipeline/addon-host.ts); none by default. */
  addons?: readonly LoadedAddon[]
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

/** Why a request on `profile`'s port may not go on, or null. */
export function portProfileRefusal (req: IncomingMessage, profile: string, users: ReadonlyMap<string, string> | null): SessionProxyError | null {
  const auth = req.headers['proxy-authorization']
  const header = req.headers[PROFILE_HEADER]
  const named = typeof header === 'string' && header !== '' ? header : undefined
  try {
    // Checks proxyAuth's password when it is configured (407 otherwise).
    const fromAuth = auth === undefined ? '' : parseProxyAuthorization(auth).username
    resolveProfileName(auth, named, users)
    for (const other of [fromAuth, named ?? '']) {
      if (other !== '' && other !== profile) {
        return new SessionProxyError('SP_PROFILE_PORT', 403, `this port is profile "${profile}" but the request names profile "${other.slice(0, 64)}": send it to the main port, or drop the Proxy-Authorization user and X-Session-Profile`)
      }
    }
  } catch (err) {
    return asProxyError(err)
  }
  return null
}

/** After the check: nothing downstream may pick another profile from these. */
function stripProfileHeaders (req: IncomingMessage): void {
  delete req.headers['proxy-authorization']
  delete req.headers[PROFILE_HEADER]
  const raw = req.rawHeaders
  for (let i = raw.length - 2; i >= 0; i -= 2) {
    const name = raw[i]!.toLowerCase()
    if (name === 'proxy-authorization' || name === PROFILE_HEADER) raw.splice(i, 2)
  }
}

async function listenProfilePort (server: http.Server, port: number, profile: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      reject(new ConfigError(`cannot listen on 127.0.0.1:${port} for profile "${profile}" (profiles.${profile}.listen / --profile-port): ${err.code === 'EADDRINUSE' ? 'the address is already in use' : err.message}`))
    }
    server.once('error', onError)
    // Loopback only: whoever reaches the port is that profile.
    server.listen(port, '127.0.0.1', () => { server.off('error', onError); resolve() })
  })
}

export function createSessionProxy (opts: CreateOptions): SessionProxy {
  const { config, log } = opts
  assertSafeBinding(config)
  const allowlist = config.allowClients.length > 0 ? new ClientAllowlist(config.allowClients) : null
  const files = openJarStore(config, log)
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
  // A memory-only profile (persist: false) leaves no file behind, its events included.
  events.persistOnly((name) => matchProfileSettings(config.profiles, name)?.settings.persist !== false)
  const accessLog = createAccessLogger(log)
  const deps: ProxyDeps = { pool, profiles, log, accessLog, proxiedLine: createProxiedLine(accessLog), via, proxyUsers: users, observers: [], events, hooks: compileHooks(opts.addons ?? [], config.limits.addonHookTimeoutMs) }
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
      ? new Interceptor(deps, new LeafMinter(ca), log, { maxHeaderBytes: limits.maxHeaderBytes, clientHeadersTimeoutMs: limits.clientHeadersTimeoutMs, clientKeepAliveTimeoutMs: limits.clientKeepAliveTimeoutMs, upgrade: upgradeLimits, http2: config.connect.http2, http2MaxConcurrentStreams: limits.http2MaxConcurrentStreams, http2StalledStreamTimeoutMs: limits.http2StalledStreamTimeoutMs }, connections)
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

  const onProxyRequest = (req: IncomingMessage, res: ServerResponse, portProfile: string | null): void => {
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
    forwardRequest(deps, req, res, target, portProfile === null ? undefined : { profile: portProfile })
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

  const serverOptions: http.ServerOptions = {
    maxHeaderSize: limits.maxHeaderBytes,
    keepAliveTimeout: limits.clientKeepAliveTimeoutMs,
    requestTimeout: 0,
    headersTimeout: limits.clientHeadersTimeoutMs,
    // Node checks headersTimeout only this often (default 30 s).
    connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(limits.clientHeadersTimeoutMs / 4)))
  }
  let adminHandler: ((req: IncomingMessage, res: ServerResponse) => void) | null = null
  // A profile port has already checked the proxy user: the tunnel must not ask again.
  const portTunnelDeps: TunnelDeps = { ...tunnelDeps, users: null }

  /** `portProfile`: the profile of the profile port the request came in on, or null (the main port). */
  const onClientRequest = (req: IncomingMessage, res: ServerResponse, portProfile: string | null): void => {
    if (req.url!.charCodeAt(0) === 47 /* '/' */) {
      // A proxied request that came back to us as origin-form is a loop.
      const via = req.headers.via
      if (via !== undefined) {
        try { checkVia(via, pseudonym) } catch (err) { sendProxyError(res, asProxyError(err)); return }
      }
      if (reverse !== null && !isAdminPath(req.url!)) {
        connections.begin(req, res, true)
        if (portProfile !== null && !claimPortProfile(req, res, portProfile)) return
        const options = reverseOptions(reverse, req, ownAddress)
        forwardRequest(deps, req, res, reverseTarget(reverse, req.url!), portProfile === null ? options : { ...options, profile: portProfile })
        return
      }
      connections.begin(req, res, false)
      if (!admitAdminRequest(req, res, adminGate)) return
      adminHandler!(req, res)
    } else {
      connections.begin(req, res, true)
      if (portProfile !== null && !claimPortProfile(req, res, portProfile)) return
      onProxyRequest(req, res, portProfile)
    }
  }

  /**
   * On a profile port every request is that profile. A request that names
   * another one (Proxy-Authorization user, X-Session-Profile) is refused
   * rather than silently sent as this profile: a script that believes it is
   * bob must not act as alice. Naming this profile is fine; proxyAuth, when
   * configured, is checked as on the main port. The naming headers are then
   * removed, so nothing downstream picks another profile.
   */
  const claimPortProfile = (req: IncomingMessage, res: ServerResponse | Socket, profile: string): boolean => {
    const refusal = portProfileRefusal(req, profile, users)
    if (refusal !== null) {
      if (res instanceof http.ServerResponse) sendProxyError(res, refusal)
      else sendRawError(res, refusal)
      log.info({ method: req.method, host: (req.url ?? '').slice(0, 200), status: refusal.statusCode, error: refusal.code, profile }, 'rejected')
      return false
    }
    stripProfileHeaders(req)
    return true
  }

  /** Every listener, the main one and the profile ports, gets the same handlers and connection tracking. */
  const wire = (server: http.Server, portProfile: string | null): void => {
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
      if (portProfile === null) {
        handleConnect(tunnelDeps, req, socket, head)
        return
      }
      if (!claimPortProfile(req, socket, portProfile)) return
      req.headers[PROFILE_HEADER] = portProfile
      handleConnect(portTunnelDeps, req, socket, head)
    })
    server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
      if (!takeRaw(socket, 'WebSockets')) return
      if (isH2cUpgrade(req)) { sendRawError(socket, h2cRefusal()); return }
      if (portProfile !== null && !claimPortProfile(req, socket, portProfile)) return
      const profileOption = portProfile === null ? undefined : { profile: portProfile }
      const url = req.url!
      if (url.charCodeAt(0) === 47 /* '/' */) {
        if (reverse !== null && !isAdminPath(url)) forwardUpgrade(deps, req, socket, head, reverseTarget(reverse, url), { ...reverseOptions(reverse, req, ownAddress), ...profileOption }, upgradeLimits)
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
      forwardUpgrade(deps, req, socket, head, target, profileOption, upgradeLimits)
    })
  }

  /** profiles.<p>.listen: one extra loopback listener per profile. */
  const portServers: Array<{ profile: string, port: number, server: http.Server }> = []
  for (const [profile, settings] of Object.entries(config.profiles)) {
    if (settings.listen === undefined || settings.listen === null) continue
    assertProfileName(profile)
    const server = http.createServer(serverOptions, (req, res) => onClientRequest(req, res, profile))
    wire(server, profile)
    portServers.push({ profile, port: settings.listen, server })
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
    // An HTTP/2 preface gets its 501 SP_H2C_UNSUPPORTED in HTTP/2 (h2-refuse.ts).
    clientErrorHandler: answerClientErrorOrH2,
    serverFactory: (fastifyHandler) => {
      adminHandler = fastifyHandler
      const server = http.createServer(serverOptions, (req, res) => onClientRequest(req, res, null))
      wire(server, null)
      return server
    }
  })

  registerAdmin(app, { config, log, profiles, deps, observe, certPem: ca.certPem, version: opts.version })

  app.addHook('onClose', async () => {
    for (const { server } of portServers) { server.close(); server.closeAllConnections() }
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
      // The shared store (Redis) is connected and loaded before any request.
      await profiles.start()
      const address = await app.listen({ host: config.host, port: config.port })
      void address
      for (const p of portServers) {
        await listenProfilePort(p.server, p.port, p.profile)
        log.info({ url: `http://127.0.0.1:${p.port}`, profile: p.profile }, 'listening for one profile')
      }
      const a = app.server.address()
      if (a === null || typeof a === 'string') return String(a)
      const host = isIP(a.address) === 6 ? `[${a.address}]` : a.address
      return `http://${host}:${a.port}`
    },
    close: async () => { await app.close() },
    shutdown: async () => {
      // Stop accepting first; app.close() below closes the server for good.
      app.server.close()
      for (const { server } of portServers) { server.close(); server.closeIdleConnections() }
      const result = await connections.drain(app.server, limits.shutdownTimeoutMs)
      await app.close()
      return result
    }
  }
}
