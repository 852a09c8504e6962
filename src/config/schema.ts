/**
 * The configuration schema. One schema validates the file (partial: every key
 * optional) and the merged result (complete after defaults), so a typo in a
 * file is reported with its key path before anything starts.
 */
import type { JSONSchemaType } from 'ajv'
import { autopilotSchema, type AutopilotRule } from './autopilot-schema.js'
import { MAX_CAPTURE_BODY_BYTES, MAX_CAPTURE_ENTRIES, type CaptureSettings, type CredentialsConfig, type EventsConfig, type MetricsConfig, type SecretRef } from '../contracts/settings.js'

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'
/** auto: pretty on a terminal, JSON lines otherwise. */
export type LogFormat = 'auto' | 'json' | 'pretty'

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

/**
 * A default header as an object: `override: true` makes it replace the
 * client's own header of that name instead of only filling in when the
 * client sent none (curl, wget and python always send User-Agent).
 */
export interface HostHeaderValue {
  value: string
  override?: boolean
}

/** Default headers and auth for upstream hosts matching `match`. */
export interface HostRule {
  /** Host pattern: `api.example.com`, `*.example.com`, `*`, optionally with `:port`. */
  match: string
  headers?: Record<string, string | HostHeaderValue>
  auth?: AuthRule
}

export interface ProfileConfig {
  hosts?: HostRule[]
  /** Login, logged-out signals and CSRF tokens per upstream host (issue 4). */
  autopilot?: AutopilotRule[]
  /** Traffic capture for the HAR export (off unless enabled). */
  capture?: Partial<CaptureSettings>
  /** CSV of profile,username,password rows for the autopilot's logins (virtual users). */
  credentials?: CredentialsConfig
  /** false: the jar lives in memory only; no file is written and it is gone at restart. */
  persist?: boolean
  /** true: responses never change the jar (Set-Cookie still reaches the client); admin writes still do. */
  readOnly?: boolean
  /** An extra listener on 127.0.0.1:PORT where every request is this profile. */
  listen?: number
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

/** CONNECT handling: which ports may be tunnelled and which hosts are intercepted. */
export interface ConnectConfig {
  allowedPorts: number[]
  /** Terminate TLS with a minted certificate so the session applies inside. */
  intercept: boolean
  /** Host patterns (like hosts[].match) that get a plain, untouched tunnel. */
  exclude: string[]
  /** Offer h2 (besides http/1.1) by ALPN inside intercepted tunnels; false: HTTP/1.1 only, as before. */
  http2: boolean
}

/** How https upstreams are verified for hosts matching `match`. */
export interface UpstreamTlsRule {
  match: string
  /** PEM bundle file trusted for these hosts, in addition to the others. */
  ca?: string
  /** Skip certificate verification (test servers only; logged as a warning). */
  insecure?: boolean
}

export interface UpstreamConfig {
  /** PEM bundle file trusted for every https upstream, in addition to the system roots. */
  ca: string | null
  /** http(s)://[user:password@]host:port; null: HTTPS_PROXY/HTTP_PROXY/NO_PROXY when set. */
  proxy: string | null
  /** Hosts never sent through the upstream proxy; null: NO_PROXY from the environment. */
  noProxy: string[] | null
  tls: UpstreamTlsRule[]
  /** Offer h2 by ALPN to https upstreams (HTTP/1.1 when they do not take it); false: HTTP/1.1 only. */
  http2: boolean
}

/**
 * Every bound the proxy enforces against clients, upstreams and its own
 * state. Each has a default in config/default.yaml and a documented error
 * (README "Limits", docs/errors.md).
 */
export interface LimitsConfig {
  /** Largest request head a client may send (431 SP_HEADERS_TOO_LARGE). */
  maxHeaderBytes: number
  /** A client must finish its request head within this (408 SP_CLIENT_TIMEOUT). */
  clientHeadersTimeoutMs: number
  /** A request body that sends nothing for this long is cut (408 if no response yet). */
  clientBodyIdleTimeoutMs: number
  /** Idle keep-alive client connections are closed after this. */
  clientKeepAliveTimeoutMs: number
  /** Concurrent client connections; idle keep-alive ones are shed first, then new ones refused (503 SP_OVERLOADED). */
  maxClientConnections: number
  /** Bytes buffered towards a client that does not read (tunnels, WebSocket refusals) before it is cut. */
  maxClientBufferBytes: number
  /** Profiles kept in memory; the least recently used idle ones are unloaded (and reloaded from disk on demand). */
  maxProfilesLoaded: number
  /**
   * Cookies held by all loaded profiles together; beyond it the least
   * recently used idle profiles are unloaded. Bounds memory by what it is
   * made of (a profile of 3 cookies and one of 3000 are not the same cost).
   */
  maxCookiesLoaded: number
  /** A profile unused for this long is unloaded. 0: only when over maxProfilesLoaded. */
  profileIdleUnloadMs: number
  /** Bytes queued to one Server-Sent Events client before it is dropped. */
  maxAdminStreamBufferBytes: number
  /** Largest request body the admin API reads (cookies.txt imports, JSON settings): 413 SP_ADMIN_BODY_TOO_LARGE. */
  maxAdminBodyBytes: number
  /** Each login step (and a discarded logged-out answer) must complete within this. */
  loginStepTimeoutMs: number
  /** Largest body the proxy reads from a login step or a discarded answer. */
  loginMaxBodyBytes: number
  /** An async addon hook must settle within this, else 502 SP_ADDON_ERROR. */
  addonHookTimeoutMs: number
  /** An addon's factory function must return (settle) within this at start, else SP_ADDON_LOAD. */
  addonStartTimeoutMs: number
  /** SIGTERM/SIGINT: in-flight requests get this long before connections are cut. */
  shutdownTimeoutMs: number
  /** Streams one HTTP/2 client connection (inside an intercepted tunnel) may have open at once. */
  http2MaxConcurrentStreams: number
  /** An HTTP/2 response the client takes no byte of (no flow-control window) for this long is reset (RST_STREAM CANCEL), and its upstream request aborted. */
  http2StalledStreamTimeoutMs: number
}

/** Who may use the admin API under /_session/. */
export interface AdminConfig {
  /** Extra Host names (besides the listen address and localhost) the admin API answers to. */
  hosts: string[]
  /** Bearer token for the admin API; required when the listener is not loopback-only. */
  token: SecretRef | null
}

export interface Config {
  host: string
  port: number
  dataDir: string | null
  logLevel: LogLevel
  /** auto (pretty on a terminal, JSON otherwise), json (e.g. `docker run -t`), pretty. */
  logFormat: LogFormat
  connectTo: string[]
  allowClients: string[]
  /** ES modules loaded at start as addons (README "Addons"); paths in a config file are relative to it. */
  addons: string[]
  proxyAuth: ProxyAuthConfig | null
  pool: PoolConfig
  jar: JarConfig
  hosts: HostRule[]
  profiles: Record<string, ProfileConfig>
  events: EventsConfig
  metrics: MetricsConfig
  connect: ConnectConfig
  upstream: UpstreamConfig
  /** Reverse (sidecar) mode: origin-form requests outside /_session/ go to this base URL. */
  reverse: string | null
  /** In reverse mode, also act as a forward proxy (absolute-form and CONNECT). Off: those get 403. */
  reverseForward: boolean
  limits: LimitsConfig
  admin: AdminConfig
  /** Where jars are kept: null, the files under dataDir; `redis://host:port/db`, shared by every proxy on that Redis. */
  store: string | null
  /** The Redis store's limits and login lock (used only when `store` is a redis:// URL). */
  redis: RedisStoreConfig
}

export interface RedisStoreConfig {
  /** Cookie writes held while Redis is unreachable (all profiles); beyond it a profile is re-sent whole on reconnect. */
  maxQueuedWrites: number
  /** A Redis command not answered within this counts as failed (the response is marked persist: failed). */
  commandTimeoutMs: number
  /** How long start-up waits for Redis before refusing to start. */
  connectTimeoutMs: number
  /** The login lock expires after this unless its holder renews it (a replica that dies mid-login frees it). */
  loginLockTtlMs: number
  /** How long a replica waits for another replica's login before it gives up. */
  loginWaitMs: number
  /** Prefix of every Redis key and channel, so several deployments can share one Redis. */
  keyPrefix: string
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

const hostMatch = { type: 'string', minLength: 1, pattern: '^(\\*|(\\*\\.)?[A-Za-z0-9_.-]+|\\[[0-9A-Fa-f:.]+\\])(:[0-9]{1,5})?$' } as const

const hostRule = {
  type: 'object',
  additionalProperties: false,
  required: ['match'],
  properties: {
    match: hostMatch,
    headers: {
      type: 'object',
      nullable: true,
      propertyNames: { pattern: headerName },
      additionalProperties: {
        // A plain value fills in when the client sent none; the object form can replace the client's.
        type: ['string', 'object'],
        additionalProperties: false,
        required: ['value'],
        properties: {
          value: { type: 'string' },
          override: { type: 'boolean' }
        }
      },
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
/** A `profiles:` key: a profile name, or a glob with `*` and `?` (src/session/profile-settings.ts). */
export const PROFILE_KEY_PATTERN = '^[A-Za-z0-9*?][A-Za-z0-9._*?-]{0,63}$'

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
    logFormat: { type: 'string', enum: ['auto', 'json', 'pretty'] },
    connectTo: {
      type: 'array',
      items: { type: 'string', pattern: '^(\\[[0-9A-Fa-f:.]+\\]|[^:\\s]*):([0-9]{0,5}):(\\[[0-9A-Fa-f:.]+\\]|[^:\\s]*):([0-9]{0,5})$' }
    },
    allowClients: { type: 'array', items: { type: 'string', minLength: 1 } },
    addons: { type: 'array', items: { type: 'string', minLength: 1 } },
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
    store: { type: 'string', nullable: true, pattern: '^(file|rediss?://.*)$' },
    redis: {
      type: 'object',
      additionalProperties: false,
      required: [],
      properties: {
        maxQueuedWrites: { type: 'integer', minimum: 1, maximum: 100000000 },
        commandTimeoutMs: { type: 'integer', minimum: 10, maximum: 600000 },
        connectTimeoutMs: { type: 'integer', minimum: 10, maximum: 600000 },
        loginLockTtlMs: { type: 'integer', minimum: 100, maximum: 3600000 },
        loginWaitMs: { type: 'integer', minimum: 0, maximum: 3600000 },
        keyPrefix: { type: 'string', maxLength: 200, pattern: '^[^\\s]*$' }
      }
    },
    events: {
      type: 'object',
      additionalProperties: false,
      required: [],
      properties: {
        maxPerProfile: { type: 'integer', minimum: 1, maximum: 1000000 },
        maxTotal: { type: 'integer', minimum: 1, maximum: 100000000 },
        persist: { type: 'boolean' },
        sessionCookies: { type: 'array', items: { type: 'string', minLength: 1 } },
        fixationWindowMs: nonNegativeInt,
        maxFileBytes: { type: 'integer', minimum: 1024, maximum: 1099511627776 },
        maxTotalFileBytes: { type: 'integer', minimum: 1024, maximum: 1099511627776 }
      }
    },
    metrics: {
      type: 'object',
      additionalProperties: false,
      required: [],
      properties: {
        enabled: { type: 'boolean' },
        maxProfileLabels: positiveInt
      }
    },
    connect: {
      type: 'object',
      additionalProperties: false,
      required: [],
      properties: {
        allowedPorts: { type: 'array', items: { type: 'integer', minimum: 1, maximum: 65535 } },
        intercept: { type: 'boolean' },
        exclude: { type: 'array', items: hostMatch },
        http2: { type: 'boolean' }
      }
    },
    upstream: {
      type: 'object',
      additionalProperties: false,
      required: [],
      properties: {
        ca: { type: 'string', minLength: 1, nullable: true },
        proxy: { type: 'string', pattern: '^[Hh][Tt][Tt][Pp][Ss]?://', nullable: true },
        noProxy: { type: 'array', items: { type: 'string', minLength: 1 }, nullable: true },
        tls: {
          type: 'array',
          items: {
            type: 'object',
            additionalProperties: false,
            required: ['match'],
            properties: {
              match: hostMatch,
              ca: { type: 'string', minLength: 1, nullable: true },
              insecure: { type: 'boolean', nullable: true }
            }
          }
        },
        http2: { type: 'boolean' }
      }
    },
    reverse: { type: 'string', pattern: '^[Hh][Tt][Tt][Pp][Ss]?://', nullable: true },
    reverseForward: { type: 'boolean' },
    limits: {
      type: 'object',
      additionalProperties: false,
      required: [],
      properties: {
        maxHeaderBytes: { type: 'integer', minimum: 1024, maximum: 1048576 },
        clientHeadersTimeoutMs: positiveInt,
        clientBodyIdleTimeoutMs: positiveInt,
        clientKeepAliveTimeoutMs: positiveInt,
        maxClientConnections: positiveInt,
        maxClientBufferBytes: positiveInt,
        maxProfilesLoaded: positiveInt,
        maxCookiesLoaded: positiveInt,
        profileIdleUnloadMs: nonNegativeInt,
        maxAdminStreamBufferBytes: positiveInt,
        maxAdminBodyBytes: positiveInt,
        loginStepTimeoutMs: positiveInt,
        loginMaxBodyBytes: positiveInt,
        addonHookTimeoutMs: positiveInt,
        addonStartTimeoutMs: positiveInt,
        shutdownTimeoutMs: nonNegativeInt,
        http2MaxConcurrentStreams: { type: 'integer', minimum: 1, maximum: 10000 },
        http2StalledStreamTimeoutMs: positiveInt
      }
    },
    admin: {
      type: 'object',
      additionalProperties: false,
      required: [],
      properties: {
        hosts: { type: 'array', items: { type: 'string', minLength: 1 } },
        token: { ...secretRef, nullable: true }
      }
    },
    profiles: {
      type: 'object',
      propertyNames: { pattern: PROFILE_KEY_PATTERN },
      required: [],
      additionalProperties: {
        type: 'object',
        additionalProperties: false,
        required: [],
        properties: {
          hosts: { type: 'array', items: hostRule, nullable: true },
          autopilot: autopilotSchema(secretRef, hostMatch),
          persist: { type: 'boolean', nullable: true },
          readOnly: { type: 'boolean', nullable: true },
          listen: { type: 'integer', minimum: 1, maximum: 65535, nullable: true },
          capture: {
            type: 'object',
            nullable: true,
            additionalProperties: false,
            required: [],
            properties: {
              enabled: { type: 'boolean' },
              maxEntries: { type: 'integer', minimum: 1, maximum: MAX_CAPTURE_ENTRIES },
              maxBodyBytes: { type: 'integer', minimum: 0, maximum: MAX_CAPTURE_BODY_BYTES },
              redact: { type: 'boolean' }
            }
          },
          credentials: {
            type: 'object',
            nullable: true,
            additionalProperties: false,
            required: ['file'],
            properties: { file: { type: 'string', minLength: 1 } }
          }
        }
      }
    }
  }
} as unknown as JSONSchemaType<Partial<Config>>
