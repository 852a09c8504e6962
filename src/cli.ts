#!/usr/bin/env node
/**
 * session-proxy command line: parses flags, loads the configuration and starts
 * the proxy. Flags win over SESSION_PROXY_* environment variables, which win
 * over the config file, which wins over the embedded defaults.
 */
import { parseArgs } from 'node:util'
import { ENV_VARIABLES, loadConfig, parsePort } from './config/load.js'
import { ConfigError } from './errors.js'
import { createLogger, flushLogger, isPretty } from './log.js'
import { installProcessGuard } from './process-guard.js'
import { runExplain } from './commands/explain.js'
import { runLoginCommand } from './commands/login.js'
import { runCookiesCommand } from './commands/cookies.js'
import { runExportCommand } from './commands/export.js'
import { runImportCommand } from './commands/import.js'
import { createSessionProxy } from './server.js'
import { CertificateAuthority } from './proxy/tls/ca.js'
import { join, resolve } from 'node:path'
import { AddonLoadError, loadAddons } from './pipeline/addon-host.js'
import { VERSION } from './version.js'

/** A config key's environment variable, from the mapping generated from the schema (so help cannot name a stale one). */
function envOf (key: string): string {
  const v = ENV_VARIABLES.find((e) => e.key.join('.') === key)
  return v === undefined ? '' : `[${v.name}] `
}

const HELP = `session-proxy ${VERSION}: an HTTP forward proxy that keeps a browser-like session
(cookies, default headers, auth, keep-alive) for curl, wget and other stateless clients.

Usage: session-proxy [options]

Options (environment variable in brackets; config-file key after it):
  --host HOST              listen address ${envOf('host')}host (default 127.0.0.1)
  --port PORT              listen port, 0 for any free port ${envOf('port')}port (default 8080)
  --data-dir DIR           where jars are kept ${envOf('dataDir')}dataDir
                           (default $XDG_STATE_HOME/session-proxy or ~/.local/state/session-proxy)
  --store URL              keep jars in Redis (redis://host:port/db), shared by every proxy on it
                           ${envOf('store')}store (default: files under the data dir)
  --config FILE            YAML or JSON config file [SESSION_PROXY_CONFIG]
  --log-level LEVEL        fatal|error|warn|info|debug|trace|silent ${envOf('logLevel')}logLevel
                           (log lines: ${envOf('logFormat')}logFormat auto|json|pretty)
  --connect-to H:P:H2:P2   connect to H2:P2 for requests to H:P, as curl does; repeatable
                           ${envOf('connectTo')}connectTo
  --addon FILE             load an addon module (README "Addons"); repeatable, added to
                           ${envOf('addons')}addons
  --reverse URL            reverse (sidecar) mode: plain requests outside /_session/ go to URL
                           ${envOf('reverse')}reverse
  --reverse-forward        with --reverse, also act as a forward proxy (absolute-form requests to
                           other hosts and CONNECT; refused with 403 otherwise)
                           ${envOf('reverseForward')}reverseForward
  --upstream-proxy URL     send upstream traffic through this HTTP proxy (http://user:pw@host:port)
                           ${envOf('upstream.proxy')}upstream.proxy (else HTTPS_PROXY/HTTP_PROXY/NO_PROXY)
  --upstream-ca FILE       PEM bundle trusted for https upstreams, besides the system roots
                           ${envOf('upstream.ca')}upstream.ca
  --connect-port PORT      allow CONNECT to PORT (replaces 80, 443, 8443); repeatable
                           ${envOf('connect.allowedPorts')}connect.allowedPorts
  --profile-port P=PORT    also listen on 127.0.0.1:PORT where every request is profile P (for
                           browsers and clients that cannot choose one); repeatable
                           ${envOf('profiles')}profiles.P.listen
  --intercept-exclude HOST plain tunnel, no interception, for HOST (*.example.com); repeatable
                           ${envOf('connect.exclude')}connect.exclude
  --no-intercept           never intercept CONNECT: plain tunnels only
                           ${envOf('connect.intercept')}connect.intercept
  --allow-clients IP/CIDR  who may use the proxy when it listens beyond loopback; repeatable
                           ${envOf('allowClients')}allowClients
  -h, --help               this help
  -v, --version            the version

Every config key has a SESSION_PROXY_* variable: see docs/environment.md.

Limits (key limits.*, SESSION_PROXY_LIMITS_*; see README "Limits" and docs/errors.md):
  maxHeaderBytes (431), clientHeadersTimeoutMs (408), clientBodyIdleTimeoutMs (408 or cut),
  clientKeepAliveTimeoutMs, maxClientConnections (503), maxClientBufferBytes (cut),
  shutdownTimeoutMs (SIGTERM/SIGINT: in-flight requests get this long, then exit 0)

Use it:  curl -x http://127.0.0.1:8080 http://example.com/          (profile "default")
         curl -x http://alice@127.0.0.1:8080 http://example.com/    (profile "alice")
Admin:   curl http://127.0.0.1:8080/_session/profiles    (web page: http://127.0.0.1:8080/_session/)

Commands:
  session-proxy ca [--data-dir DIR | --config FILE]
                           print the CA certificate clients trust for intercepted HTTPS
                           (created on first use in DATA_DIR/ca/)
  session-proxy explain URL [--profile P] [--method M]
                           which cookies would be sent to URL, and why not the others
  session-proxy cookies PROFILE [--set NAME=VALUE --domain D [--path P] | --delete NAME |
                         --import FILE | --export FILE]
                           list (a table) or edit PROFILE's jar in the running proxy
  session-proxy login PROFILE [--upstream HOST]
                           run PROFILE's configured login flows now
  session-proxy export [--out FILE] [--store URL | --data-dir DIR | --config FILE]
                           every profile's cookies as JSON (lossless), from the configured store
  session-proxy import FILE [--store URL | --data-dir DIR | --config FILE]
                           put the profiles of an export into the configured store (replaces them)
`

interface Flags {
  host?: string
  port?: string
  'data-dir'?: string
  store?: string
  config?: string
  'log-level'?: string
  'connect-to'?: string[]
  reverse?: string
  'reverse-forward'?: boolean
  'upstream-proxy'?: string
  'upstream-ca'?: string
  'connect-port'?: string[]
  'profile-port'?: string[]
  'intercept-exclude'?: string[]
  'no-intercept'?: boolean
  'allow-clients'?: string[]
  addon?: string[]
  help?: boolean
  version?: boolean
}

function fail (message: string): never {
  process.stderr.write(`session-proxy: ${message}\n`)
  process.exit(2)
}

async function main (argv: string[]): Promise<void> {
  if (argv[0] === 'explain') { process.exitCode = await runExplain(argv.slice(1)); return }
  if (argv[0] === 'login') { process.exitCode = await runLoginCommand(argv.slice(1)); return }
  if (argv[0] === 'cookies') { process.exitCode = await runCookiesCommand(argv.slice(1)); return }
  if (argv[0] === 'export') { process.exitCode = await runExportCommand(argv.slice(1)); return }
  if (argv[0] === 'import') { process.exitCode = await runImportCommand(argv.slice(1)); return }
  // `session-proxy ca [options]` resolves the data dir like the server does.
  const caCommand = argv[0] === 'ca'
  if (caCommand) argv = argv.slice(1)
  let values: Flags
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        host: { type: 'string' },
        port: { type: 'string' },
        'data-dir': { type: 'string' },
        store: { type: 'string' },
        config: { type: 'string' },
        'log-level': { type: 'string' },
        'connect-to': { type: 'string', multiple: true },
        reverse: { type: 'string' },
        'reverse-forward': { type: 'boolean' },
        'upstream-proxy': { type: 'string' },
        'upstream-ca': { type: 'string' },
        'connect-port': { type: 'string', multiple: true },
        'profile-port': { type: 'string', multiple: true },
        'intercept-exclude': { type: 'string', multiple: true },
        'no-intercept': { type: 'boolean' },
        'allow-clients': { type: 'string', multiple: true },
        addon: { type: 'string', multiple: true },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' }
      },
      strict: true,
      allowPositionals: false
    }))
  } catch (err) {
    fail(`${(err as Error).message}\nRun session-proxy --help for the options.`)
  }
  if (values.help === true) { process.stdout.write(HELP); return }
  if (values.version === true) { process.stdout.write(`${VERSION}\n`); return }

  let loaded
  try {
    const flags: Record<string, unknown> = {
      host: values.host,
      port: values.port === undefined ? undefined : parsePort(values.port, '--port'),
      dataDir: values['data-dir'],
      store: values.store,
      logLevel: values['log-level'],
      connectTo: values['connect-to'],
      allowClients: values['allow-clients'],
      reverse: values.reverse,
      reverseForward: values['reverse-forward'] === true ? true : undefined,
      upstream: { proxy: values['upstream-proxy'], ca: values['upstream-ca'] },
      profiles: profilePortFlags(values['profile-port']),
      connect: {
        allowedPorts: values['connect-port']?.map((p) => parsePort(p, '--connect-port')),
        exclude: values['intercept-exclude'],
        intercept: values['no-intercept'] === true ? false : undefined
      }
    }
    loaded = loadConfig({ configFile: values.config, flags })
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message)
    throw err
  }
  const { config, sources } = loaded
  if (caCommand) {
    try {
      process.stdout.write(CertificateAuthority.loadOrCreate(join(config.dataDir!, 'ca')).certPem)
    } catch (err) {
      if (err instanceof ConfigError) fail(err.message)
      throw err
    }
    return
  }
  // --addon files come after the configured ones, relative to the working directory.
  for (const file of values.addon ?? []) config.addons.push(resolve(file))
  const log = createLogger(config.logLevel, { pretty: isPretty(config.logFormat) })
  installProcessGuard(log)
  let addons
  try {
    addons = await loadAddons(config.addons, config as unknown as Readonly<Record<string, unknown>>, log)
  } catch (err) {
    if (err instanceof AddonLoadError) fail(err.message)
    throw err
  }
  let proxy
  try {
    proxy = createSessionProxy({ config, log, version: VERSION, addons })
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message)
    throw err
  }
  let url: string
  try {
    url = await proxy.listen()
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message)
    const e = err as NodeJS.ErrnoException
    fail(e.code === 'EADDRINUSE' ? `cannot listen on ${config.host}:${config.port}: the address is already in use (choose another with --port)` : `cannot listen on ${config.host}:${config.port}: ${e.message}`)
  }
  // The address line is printed at every level but silent: scripts (and
  // --port 0 users) need it even with --log-level warn.
  const startLog = log.isLevelEnabled('info') || log.level === 'silent' ? log : log.child({}, { level: 'info' })
  startLog.info({ url, dataDir: config.dataDir, config: sources, version: VERSION }, 'listening')

  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) return
    stopping = true
    log.info({ signal, timeoutMs: config.limits.shutdownTimeoutMs }, 'shutting down')
    // Past the deadline plus time to flush the jars, give up loudly.
    const force = setTimeout(() => { log.error('shutdown did not finish in time'); process.exit(1) }, config.limits.shutdownTimeoutMs + 10_000)
    force.unref()
    proxy.shutdown().then(async ({ cut }) => {
      log.info({ cut }, cut === 0 ? 'stopped' : 'stopped; requests still running at the deadline were cut')
      await flushLogger(log)
      process.exit(0)
    }, async (err: unknown) => {
      log.error({ err }, 'error while shutting down')
      await flushLogger(log)
      process.exit(1)
    })
  }
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGTERM', () => stop('SIGTERM'))
}

/** `--profile-port alice=8081` (repeatable) as profiles.alice.listen. */
function profilePortFlags (values: string[] | undefined): Record<string, { listen: number }> | undefined {
  if (values === undefined) return undefined
  const out: Record<string, { listen: number }> = {}
  for (const v of values) {
    const eq = v.lastIndexOf('=')
    if (eq <= 0) throw new ConfigError(`--profile-port ${JSON.stringify(v)}: use PROFILE=PORT, e.g. --profile-port alice=8081`)
    out[v.slice(0, eq)] = { listen: parsePort(v.slice(eq + 1), '--profile-port') }
  }
  return out
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`session-proxy: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`)
  process.exit(1)
})
