#!/usr/bin/env node
/**
 * session-proxy command line: parses flags, loads the configuration and starts
 * the proxy. Flags win over SESSION_PROXY_* environment variables, which win
 * over the config file, which wins over the embedded defaults.
 */
import { parseArgs } from 'node:util'
import { loadConfig, parsePort } from './config/load.js'
import { ConfigError } from './errors.js'
import { createLogger } from './log.js'
import { createSessionProxy } from './server.js'
import { VERSION } from './version.js'

const HELP = `session-proxy ${VERSION}: an HTTP forward proxy that keeps a browser-like session
(cookies, default headers, auth, keep-alive) for curl, wget and other stateless clients.

Usage: session-proxy [options]

Options (environment variable in brackets; config-file key after it):
  --host HOST              listen address [SESSION_PROXY_HOST] host (default 127.0.0.1)
  --port PORT              listen port, 0 for any free port [SESSION_PROXY_PORT] port (default 8080)
  --data-dir DIR           where jars are kept [SESSION_PROXY_DATA_DIR] dataDir
                           (default $XDG_STATE_HOME/session-proxy or ~/.local/state/session-proxy)
  --config FILE            YAML or JSON config file [SESSION_PROXY_CONFIG]
  --log-level LEVEL        fatal|error|warn|info|debug|trace|silent [SESSION_PROXY_LOG_LEVEL] logLevel
  --connect-to H:P:H2:P2   connect to H2:P2 for requests to H:P, as curl does; repeatable
                           [SESSION_PROXY_CONNECT_TO, comma-separated] connectTo
  -h, --help               this help
  -v, --version            the version

Use it:  curl -x http://127.0.0.1:8080 http://example.com/          (profile "default")
         curl -x http://alice@127.0.0.1:8080 http://example.com/    (profile "alice")
Admin:   curl http://127.0.0.1:8080/_session/profiles
`

interface Flags {
  host?: string
  port?: string
  'data-dir'?: string
  config?: string
  'log-level'?: string
  'connect-to'?: string[]
  help?: boolean
  version?: boolean
}

function fail (message: string): never {
  process.stderr.write(`session-proxy: ${message}\n`)
  process.exit(2)
}

async function main (argv: string[]): Promise<void> {
  let values: Flags
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        host: { type: 'string' },
        port: { type: 'string' },
        'data-dir': { type: 'string' },
        config: { type: 'string' },
        'log-level': { type: 'string' },
        'connect-to': { type: 'string', multiple: true },
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
      logLevel: values['log-level'],
      connectTo: values['connect-to']
    }
    loaded = loadConfig({ configFile: values.config, flags })
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message)
    throw err
  }
  const { config, sources } = loaded
  const log = createLogger(config.logLevel)
  let proxy
  try {
    proxy = createSessionProxy({ config, log, version: VERSION })
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message)
    throw err
  }
  let url: string
  try {
    url = await proxy.listen()
  } catch (err) {
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
    log.info({ signal }, 'shutting down')
    const force = setTimeout(() => process.exit(1), 10_000)
    force.unref()
    proxy.close().then(() => { log.flush(); process.exit(0) }, (err: unknown) => {
      log.error({ err }, 'error while shutting down')
      log.flush()
      process.exit(1)
    })
  }
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGTERM', () => stop('SIGTERM'))
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`session-proxy: unexpected error: ${(err as Error)?.stack ?? String(err)}\n`)
  process.exit(1)
})
