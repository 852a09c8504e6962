import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { homedir } from 'node:os'
import { dirname, extname, join, resolve } from 'node:path'
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
  if (where === 'store') return 'expected redis://host:port/db, rediss://... or file'
  if (where === 'redis.keyPrefix') return 'expected text without spaces'
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

export const CONFIG_ENV = 'SESSION_PROXY_CONFIG'
/** A whole (partial) configuration as JSON, merged over the file and under the single variables. */
export const CONFIG_JSON_ENV = 'SESSION_PROXY_CONFIG_JSON'
const ENV_PREFIX = 'SESSION_PROXY_'

/**
 * How a variable's text becomes a value: scalars as they are, lists
 * comma-separated (or a JSON array), a secret as its inline value (or a JSON
 * {"env": ...} / {"file": ...} reference), everything structured as JSON.
 */
export type EnvKind = 'string' | 'integer' | 'boolean' | 'list' | 'integer-list' | 'secret' | 'json'

export interface EnvVariable {
  name: string
  /** The config key path, e.g. ['limits', 'maxHeaderBytes']. */
  key: string[]
  kind: EnvKind
  /** The literal `null` sets the key to null. */
  nullable: boolean
}

interface SchemaNode {
  type?: string
  nullable?: boolean
  properties?: Record<string, SchemaNode>
  items?: SchemaNode
}

/** `limits.maxHeaderBytes` is SESSION_PROXY_LIMITS_MAX_HEADER_BYTES. */
export function envNameOf (key: string[]): string {
  return ENV_PREFIX + key.map((part) => part.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('_')
}

function isSecretRefNode (node: SchemaNode): boolean {
  const props = Object.keys(node.properties ?? {}).sort().join(',')
  return node.type === 'object' && props === 'env,file,value'
}

function kindOf (node: SchemaNode): EnvKind {
  if (isSecretRefNode(node)) return 'secret'
  if (node.type === 'string') return 'string'
  if (node.type === 'integer') return 'integer'
  if (node.type === 'boolean') return 'boolean'
  if (node.type === 'array' && node.items?.type === 'string') return 'list'
  if (node.type === 'array' && node.items?.type === 'integer') return 'integer-list'
  return 'json'
}

/** Every key of the schema, sections included (a section's variable takes JSON). */
function envVariablesOf (props: Record<string, SchemaNode>, path: string[], out: EnvVariable[]): EnvVariable[] {
  for (const [name, node] of Object.entries(props)) {
    const key = [...path, name]
    const nullable = node.nullable === true
    if (node.type === 'object' && node.properties !== undefined && !isSecretRefNode(node)) {
      out.push({ name: envNameOf(key), key, kind: 'json', nullable })
      envVariablesOf(node.properties, key, out)
    } else {
      out.push({ name: envNameOf(key), key, kind: kindOf(node), nullable })
    }
  }
  return out
}

/** Derived from the schema, so a new config key gets its variable without a second list to keep. */
export const ENV_VARIABLES: readonly EnvVariable[] = envVariablesOf((configSchema as unknown as SchemaNode).properties ?? {}, [], [])

const BOOLEAN_WORDS: Record<string, boolean> = { true: true, false: false, 1: true, 0: false, yes: true, no: false, on: true, off: false }

function parseJsonVariable (name: string, raw: string): unknown {
  try {
    return JSON.parse(raw)
  } catch (err) {
    throw new ConfigError(`${name}: is not valid JSON (${(err as Error).message})`, { cause: err })
  }
}

function parseInteger (name: string, raw: string): number {
  if (!/^-?\d+$/.test(raw.trim())) throw new ConfigError(`${name}: "${raw}" is not an integer`)
  return Number(raw.trim())
}

function parseList (name: string, raw: string): unknown[] {
  // Text starting with '[' can only parse as an array.
  if (raw.trim().startsWith('[')) return parseJsonVariable(name, raw) as unknown[]
  return raw.split(/[\s,]+/).filter(Boolean)
}

function parseEnvValue (v: EnvVariable, raw: string): unknown {
  if (v.nullable && raw.trim() === 'null') return null
  switch (v.kind) {
    case 'string': return raw
    case 'integer': return v.name === 'SESSION_PROXY_PORT' ? parsePort(raw.trim(), v.name) : parseInteger(v.name, raw)
    case 'boolean': {
      const value = BOOLEAN_WORDS[raw.trim().toLowerCase()]
      if (value === undefined) throw new ConfigError(`${v.name}: "${raw}" is not a boolean (true or false)`)
      return value
    }
    case 'list': return parseList(v.name, raw)
    case 'integer-list': return parseList(v.name, raw).map((item) => typeof item === 'string' ? parseInteger(v.name, item) : item)
    case 'secret': return raw.trim().startsWith('{') ? parseJsonVariable(v.name, raw) : { value: raw }
    case 'json': return parseJsonVariable(v.name, raw)
  }
}

function nest (key: string[], value: unknown): PlainObject {
  let out: unknown = value
  for (let i = key.length - 1; i >= 0; i--) out = { [key[i]]: out }
  return out as PlainObject
}

/**
 * Kubernetes gives every pod variables for each Service in its namespace
 * (enableServiceLinks): a Service named session-proxy brings
 * SESSION_PROXY_SERVICE_HOST, SESSION_PROXY_PORT=tcp://10.0.0.7:8080,
 * SESSION_PROXY_PORT_8080_TCP_ADDR and the like. They are not settings.
 */
function isServiceLink (name: string, value: string): boolean {
  if (/^SESSION_PROXY_SERVICE_(HOST|PORT)(_[A-Z0-9_]+)?$/.test(name)) return true
  if (/^SESSION_PROXY_PORT_\d+_(TCP|UDP|SCTP)(_PROTO|_PORT|_ADDR)?$/.test(name)) return true
  return name === 'SESSION_PROXY_PORT' && /^(tcp|udp|sctp):\/\//.test(value)
}

/**
 * Overrides from SESSION_PROXY_* environment variables (docs/environment.md).
 * SESSION_PROXY_CONFIG_JSON first, then sections, then single keys, so the
 * most specific variable wins. Each variable is validated on its own, so an
 * error names it. An unknown SESSION_PROXY_* name is an error: a mistyped
 * allowlist or token must not be silently ignored. Empty means unset.
 */
export function configFromEnv (env: NodeJS.ProcessEnv): PlainObject {
  const known = new Map(ENV_VARIABLES.map((v) => [v.name, v]))
  for (const name of Object.keys(env)) {
    if (!name.startsWith(ENV_PREFIX) || known.has(name) || name === CONFIG_ENV || name === CONFIG_JSON_ENV) continue
    if (env[name] === undefined || env[name] === '' || isServiceLink(name, env[name])) continue
    throw new ConfigError(`${name}: unknown environment variable (every SESSION_PROXY_* variable is a config key; see docs/environment.md)`)
  }
  let out: PlainObject = {}
  const json = env[CONFIG_JSON_ENV]
  if (json !== undefined && json !== '') {
    const parsed = parseJsonVariable(CONFIG_JSON_ENV, json)
    if (!isPlainObject(parsed)) throw new ConfigError(`${CONFIG_JSON_ENV}: the top level must be a JSON object of config keys`)
    validate(parsed, `environment variable ${CONFIG_JSON_ENV}`)
    out = parsed
  }
  const byDepth = [...ENV_VARIABLES].sort((a, b) => a.key.length - b.key.length)
  for (const v of byDepth) {
    const raw = env[v.name]
    if (raw === undefined || raw === '' || isServiceLink(v.name, raw)) continue
    const part = nest(v.key, parseEnvValue(v, raw))
    validate(part, `environment variable ${v.name}`)
    out = mergeConfig(out, part)
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
    const fromFile = readConfigFile(path)
    // Addon paths in a config file are relative to that file, wherever the proxy is started.
    if (Array.isArray(fromFile.addons)) fromFile.addons = (fromFile.addons as string[]).map((p) => resolve(dirname(path), p))
    merged = mergeConfig(merged, fromFile)
    sources.push(path)
  }
  merged = mergeConfig(merged, configFromEnv(env))
  merged = mergeConfig(merged, opts.flags ?? {})
  validate(merged, 'the merged configuration (defaults, file, environment, flags)')
  const config = merged as unknown as Config
  if (config.dataDir === null || config.dataDir === undefined) config.dataDir = defaultDataDir(env)
  config.dataDir = resolve(config.dataDir)
  config.addons = (config.addons ?? []).map((p) => resolve(p))
  return { config, sources }
}
