/**
 * The configuration schema. One schema validates the file (partial: every key
 * optional) and the merged result (complete after defaults), so a typo in a
 * file is reported with its key path before anything starts.
 */
import type { JSONSchemaType } from 'ajv'

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'

/** A secret given inline, by environment variable name, or by file path. */
export interface SecretRef {
  value?: string
  env?: string
  file?: string
}

export interface BasicAuthRule {
  type: 'basic'
  username: string
  password: SecretRef
}

export interface BearerAuthRule {
  type: 'bearer'
  token: SecretRef
}

export type AuthRule = BasicAuthRule | BearerAuthRule

/** Default headers and auth for upstream hosts matching `match`. */
export interface HostRule {
  /** Host pattern: `api.example.com`, `*.example.com`, `*`, optionally with `:port`. */
  match: string
  headers?: Record<string, string>
  auth?: AuthRule
}

export interface ProfileConfig {
  hosts?: HostRule[]
}

export interface PoolConfig {
  connectionsPerOrigin: number
  idleTimeoutMs: number
  maxIdleTimeoutMs: number
  connectTimeoutMs: number
  headersTimeoutMs: number
  bodyTimeoutMs: number
}

export interface JarConfig {
  maxCookiesPerProfile: number
  maxCookiesPerDomain: number
}

export interface ProxyAuthConfig {
  /** username (= profile) to password */
  users: Record<string, SecretRef>
}

export interface Config {
  host: string
  port: number
  dataDir: string | null
  logLevel: LogLevel
  connectTo: string[]
  allowClients: string[]
  proxyAuth: ProxyAuthConfig | null
  pool: PoolConfig
  jar: JarConfig
  hosts: HostRule[]
  profiles: Record<string, ProfileConfig>
}

const secretRef = {
  type: 'object',
  additionalProperties: false,
  properties: {
    value: { type: 'string', nullable: true },
    env: { type: 'string', nullable: true, minLength: 1 },
    file: { type: 'string', nullable: true, minLength: 1 }
  },
  minProperties: 1,
  maxProperties: 1
} as const

const headerName = '^[!#$%&\'*+.^_`|~0-9A-Za-z-]+$'

const hostRule = {
  type: 'object',
  additionalProperties: false,
  required: ['match'],
  properties: {
    match: { type: 'string', minLength: 1, pattern: '^(\\*|(\\*\\.)?[A-Za-z0-9_.-]+|\\[[0-9A-Fa-f:.]+\\])(:[0-9]{1,5})?$' },
    headers: {
      type: 'object',
      nullable: true,
      propertyNames: { pattern: headerName },
      additionalProperties: { type: 'string' },
      required: []
    },
    auth: {
      type: 'object',
      nullable: true,
      required: ['type'],
      oneOf: [
        {
          type: 'object',
          additionalProperties: false,
          required: ['type', 'username', 'password'],
          properties: {
            type: { const: 'basic' },
            username: { type: 'string' },
            password: secretRef
          }
        },
        {
          type: 'object',
          additionalProperties: false,
          required: ['type', 'token'],
          properties: {
            type: { const: 'bearer' },
            token: secretRef
          }
        }
      ]
    }
  }
} as const

const positiveInt = { type: 'integer', minimum: 1 } as const
const nonNegativeInt = { type: 'integer', minimum: 0 } as const

export const PROFILE_NAME_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'

// The schema is written out by hand (not derived) so its error messages stay
// readable; ajv's JSONSchemaType keeps it in step with the Config type.
export const configSchema = {
  $id: 'session-proxy/config',
  type: 'object',
  additionalProperties: false,
  required: [],
  properties: {
    host: { type: 'string', minLength: 1 },
    port: { type: 'integer', minimum: 0, maximum: 65535 },
    dataDir: { type: 'string', minLength: 1, nullable: true },
    logLevel: { type: 'string', enum: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] },
    connectTo: {
      type: 'array',
      items: { type: 'string', pattern: '^(\\[[0-9A-Fa-f:.]+\\]|[^:\\s]*):([0-9]{0,5}):(\\[[0-9A-Fa-f:.]+\\]|[^:\\s]*):([0-9]{0,5})$' }
    },
    allowClients: { type: 'array', items: { type: 'string', minLength: 1 } },
    proxyAuth: {
      type: 'object',
      nullable: true,
      additionalProperties: false,
      required: ['users'],
      properties: {
        users: {
          type: 'object',
          propertyNames: { pattern: PROFILE_NAME_PATTERN },
          additionalProperties: secretRef,
          required: [],
          minProperties: 1
        }
      }
    },
    pool: {
      type: 'object',
      additionalProperties: false,
      required: [],
      properties: {
        connectionsPerOrigin: positiveInt,
        idleTimeoutMs: positiveInt,
        maxIdleTimeoutMs: positiveInt,
        connectTimeoutMs: positiveInt,
        headersTimeoutMs: nonNegativeInt,
        bodyTimeoutMs: nonNegativeInt
      }
    },
    jar: {
      type: 'object',
      additionalProperties: false,
      required: [],
      properties: {
        maxCookiesPerProfile: positiveInt,
        maxCookiesPerDomain: positiveInt
      }
    },
    hosts: { type: 'array', items: hostRule },
    profiles: {
      type: 'object',
      propertyNames: { pattern: PROFILE_NAME_PATTERN },
      required: [],
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        required: [],
        properties: {
          hosts: { type: 'array', items: hostRule, nullable: true }
        }
      }
    }
  }
} as unknown as JSONSchemaType<Partial<Config>>
