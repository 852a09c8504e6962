import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { homedir } from 'node:os'
import { extname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { ErrorObject } from 'ajv'
import { ConfigError } from '../errors.js'
import { configSchema, type Config } from './schema.js'

export const DEFAULT_CONFIG_PATH = fileURLToPath(new URL('../../config/default.yaml', import.meta.url))

type PlainObject = Record<string, unknown>

type Validator = ((data: unknown) => boolean) & { errors?: ErrorObject[] | null }

/** The build precompiles the schema (scripts/compile-config.mjs); compile here only without it. */
function loadValidator (): Validator {
  try {
    return createRequire(import.meta.url)('./config-validator.cjs') as Validator
  } catch {
    // Loaded only here: ajv costs ~50 ms of start-up.
    const { Ajv } = createRequire(import.meta.url)('ajv') as typeof import('ajv')
    return new Ajv({ allErrors: true, strict: false }).compile(configSchema) as Validator
  }
}
const validateConfig = loadValidator()

function isPlainObject (value: unknown): value is PlainObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** Objects merge key by key; everything else (lists included) replaces. */
export function mergeConfig (base: PlainObject, over: PlainObject): PlainObject {
  const out: PlainObject = { ...base }
  for (const [key, value] of Object.entries(over)) {
    if (value === undefined) continue
    const prev = out[key]
    out[key] = isPlainObject(prev) && isPlainObject(value) ? mergeConfig(prev, value) : value
  }
  return out
}

function keyPath (instancePath: string): string {
  if (instancePath === '') return '(top level)'
  return instancePath.slice(1).split('/').map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~')).join('.')
}

function describeError (err: ErrorObject): string {
  const where = keyPath(err.instancePath)
  switch (err.keyword) {
    case 'additionalProperties': {
      const extra = (err.params as { additionalProperty: string }).additionalProperty
      const key = where === '(top level)' ? extra : `${where}.${extra}`
      return `${key}: unknown key`
    }
    case 'propertyNames': {
      const name = (err.params as { propertyName: string }).propertyName
      return `${where}: key "${name}" is not allowed (names are letters, digits, '.', '_' and '-')`
    }
    case 'enum':
      return `${where}: must be one of ${((err.params as { allowedValues: unknown[] }).allowedValues).join(', ')}`
    case 'pattern':
      return `${where}: has the wrong form (${patternHint(where)})`
    default:
      return `${where}: ${err.message ?? 'is invalid'}`
  }
}

function patternHint (where: string): string {
  if (where.startsWith('connectTo')) return 'expected HOST:PORT:HOST2:PORT2'
  if (where.endsWith('match') || where.startsWith('connect.exclude')) return 'expected a host like api.example.com, *.example.com or *, optionally with :port'
  if (where === 'reverse' || where === 'upstream.proxy') return 'expected an http:// or https:// URL'
  return 'see the README for the expected format'
}

/** Keeps the most useful messages: oneOf/if noise is dropped when a precise error exists. */
function formatErrors (errors: ErrorObject[]): string {
  const precise = errors.filter((e) => e.keyword !== 'oneOf' && e.keyword !== 'if')
  const chosen = precise.length > 0 ? precise : errors
  const lines = [...new Set(chosen.map(describeError))]
  return lines.map((l) => `  - ${l}`).join('\n')
}

export function validate (candidate: unknown, source: string): asserts candidate is Partial<Config> {
  if (!validateConfig(candidate)) {
    throw new ConfigError(`invalid configuration in ${source}:\n${formatErrors(validateConfig.errors ?? [])}`)
  }
}

/** Reads a YAML or JSON config file; errors name the file and the line or key. */
export function readConfigFile (path: string): PlainObject {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    throw new ConfigError(`cannot read config file ${path}: ${code === 'ENOENT' ? 'no such file' : String((err as Error).message)}`, { cause: err })
  }
  let parsed: unknown
  try {
    if (extname(path).toLowerCase() === '.json') {
      parsed = JSON.parse(text)
    } else {
      // Loaded on demand: the embedded defaults come precompiled to JSON.
      parsed = (createRequire(import.meta.url)('yaml') as typeof import('yaml')).parse(text, { prettyErrors: true })
    }
  } catch (err) {
    const detail = (err as Error).message
    throw new ConfigError(`config file ${path} is not valid ${extname(path).toLowerCase() === '.json' ? 'JSON' : 'YAML'}: ${detail}`, { cause: err })
  }
  if (parsed === null || parsed === undefined) return {}
  if (!isPlainObject(parsed)) throw new ConfigError(`config file ${path}: the top level must be a mapping of keys to values`)
  validate(parsed, `config file ${path}`)
  return parsed
}

/** The embedded defaults: the build's JSON copy of config/default.yaml, else the YAML itself. */
function readDefaults (): PlainObject {
  let parsed: unknown
  try {
    parsed = createRequire(import.meta.url)('./default-config.json')
  } catch {
    return readConfigFile(DEFAULT_CONFIG_PATH)
  }
  validate(parsed, `config file ${DEFAULT_CONFIG_PATH}`)
  return structuredClone(parsed) as PlainObject
}

const ENV_KEYS = {
  SESSION_PROXY_HOST: 'host',
  SESSION_PROXY_PORT: 'port',
  SESSION_PROXY_DATA_DIR: 'dataDir',
  SESSION_PROXY_LOG_LEVEL: 'logLevel',
  SESSION_PROXY_CONNECT_TO: 'connectTo',
  SESSION_PROXY_REVERSE: 'reverse',
  SESSION_PROXY_UPSTREAM_PROXY: 'upstream.proxy',
  SESSION_PROXY_UPSTREAM_CA: 'upstream.ca'
} as const

export const CONFIG_ENV = 'SESSION_PROXY_CONFIG'

/** Overrides from SESSION_PROXY_* environment variables. */
export function configFromEnv (env: NodeJS.ProcessEnv): PlainObject {
  const out: PlainObject = {}
  for (const [name, key] of Object.entries(ENV_KEYS)) {
    const raw = env[name]
    if (raw === undefined || raw === '') continue
    if (key === 'port') out.port = parsePort(raw, name)
    else if (key === 'connectTo') out.connectTo = raw.split(/[\s,]+/).filter(Boolean)
    else if (key.startsWith('upstream.')) out.upstream = { ...(out.upstream as PlainObject | undefined), [key.slice(9)]: raw }
    else out[key] = raw
  }
  return out
}

export function parsePort (raw: string, source: string): number {
  if (!/^\d{1,5}$/.test(raw) || Number(raw) > 65535) {
    throw new ConfigError(`${source}: "${raw}" is not a port number (0-65535)`)
  }
  return Number(raw)
}

export function defaultDataDir (env: NodeJS.ProcessEnv = process.env): string {
  if (process.platform === 'win32') {
    return join(env.LOCALAPPDATA ?? join(homedir(), 'AppData', 'Local'), 'session-proxy')
  }
  if (process.platform === 'darwin') {
    return join(homedir(), 'Library', 'Application Support', 'session-proxy')
  }
  return join(env.XDG_STATE_HOME && env.XDG_STATE_HOME.startsWith('/') ? env.XDG_STATE_HOME : join(homedir(), '.local', 'state'), 'session-proxy')
}

export interface LoadOptions {
  configFile?: string
  flags?: PlainObject
  env?: NodeJS.ProcessEnv
}

export interface LoadedConfig {
  config: Config
  /** The files read, in order, for the start-up log. */
  sources: string[]
}

/** defaults <- file <- environment <- flags, then validated as a whole. */
export function loadConfig (opts: LoadOptions = {}): LoadedConfig {
  const env = opts.env ?? process.env
  const sources = [DEFAULT_CONFIG_PATH]
  let merged = readDefaults()
  const file = opts.configFile ?? (env[CONFIG_ENV] || undefined)
  if (file !== undefined) {
    const path = resolve(file)
    merged = mergeConfig(merged, readConfigFile(path))
    sources.push(path)
  }
  merged = mergeConfig(merged, configFromEnv(env))
  merged = mergeConfig(merged, opts.flags ?? {})
  validate(merged, 'the merged configuration (defaults, file, environment, flags)')
  const config = merged as unknown as Config
  if (config.dataDir === null || config.dataDir === undefined) config.dataDir = defaultDataDir(env)
  config.dataDir = resolve(config.dataDir)
  return { config, sources }
}
