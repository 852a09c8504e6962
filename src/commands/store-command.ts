/** What `export` and `import` share: their store options and the configuration they name. */
import pino, { type Logger } from 'pino'
import { loadConfig } from '../config/load.js'
import type { Config } from '../config/schema.js'

export const STORE_OPTIONS_HELP = `Which store (as the proxy would use it):
  --store URL             redis://host:port/db [SESSION_PROXY_STORE] (default: files)
  --data-dir DIR          the data directory of the file store [SESSION_PROXY_DATA_DIR]
  --config FILE           config file to read store, dataDir and redis.* from [SESSION_PROXY_CONFIG]
  -h, --help              this help
`

export const STORE_PARSE_OPTIONS = {
  store: { type: 'string' },
  'data-dir': { type: 'string' },
  config: { type: 'string' },
  help: { type: 'boolean', short: 'h' }
} as const

export function storeConfig (values: { store?: string, 'data-dir'?: string, config?: string }): Config {
  return loadConfig({ configFile: values.config, flags: { store: values.store, dataDir: values['data-dir'] } }).config
}

/** Warnings to stderr, so stdout stays the export. */
export function commandLogger (): Logger {
  return pino({ level: 'warn' }, pino.destination(2))
}
