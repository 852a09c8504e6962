/**
 * Configuration of the session autopilot (issue 4): per upstream host, how to
 * log in, how to tell that the session is gone, and which CSRF tokens to
 * carry. Kept apart from the main schema so each concern stays readable.
 */
import type { SecretRef } from '../contracts/settings.js'

export type ValueSource =
  | { cookie: string }
  | { header: string }
  | { html: { input?: string, meta?: string } }
  | { json: string }

export interface LoginStep {
  name?: string
  method?: string
  /** Path (resolved against the rule's base URL) or absolute URL; `{{var}}` allowed. */
  url: string
  headers?: Record<string, string>
  form?: Record<string, string>
  json?: Record<string, unknown>
  /** Values to capture from this step's response into variables. */
  extract?: Record<string, ValueSource>
  /** When the body does not match this regex, the session is already logged in: the flow ends here, successfully. */
  loggedInUnlessBody?: string
  expect?: {
    status?: number[]
    /** Regex the Location header must not match (e.g. `[?&]error`). */
    locationNot?: string
    /** Regex the body must not match (e.g. a login error marker). */
    bodyNot?: string
    /** Added to the failure message (presets use it to say what to configure). */
    hint?: string
  }
}

export interface LoginConfig {
  preset?: 'spring-form' | 'tomcat-form' | 'json-token' | 'basic-session'
  username?: string
  password?: SecretRef
  /** Preset parameters (paths are relative to the base URL). */
  loginPath?: string
  startPath?: string
  usernameField?: string
  passwordField?: string
  tokenField?: string
  steps?: LoginStep[]
  /** Where the login's result lives: a value sent on later requests. */
  token?: { from: ValueSource, header?: string, prefix?: string }
}

export interface LoggedOutConfig {
  status?: number[]
  /** Regex on the Location of a 3xx. */
  redirect?: string
  /** Regex on the body of a text response (login page served with 200). */
  body?: string
  header?: { name: string, pattern?: string }
  /** A session cookie that the response deletes. */
  cookieCleared?: string
}

export interface CsrfRuleConfig {
  preset?: 'spring' | 'spring-cookie' | 'tomcat'
  from?: ValueSource
  to?: { header?: string, form?: string }
  /** Fetch a token before an unsafe request when none is known: a safe request to this path. */
  refreshPath?: string
  /** Headers for the refresh request (Tomcat: X-CSRF-Token: Fetch). */
  refreshHeaders?: Record<string, string>
}

export interface AutopilotRule {
  /**
   * Host pattern, as in `hosts`. A rule with a login and no baseUrl must name
   * one host (no `*`): the login runs only at that host and port (the
   * scheme's default port when none is given), never at whatever matched.
   */
  match: string
  /**
   * Scheme, host, optional port and context path that login paths are
   * relative to: the one origin the credentials are sent to. Default: the
   * request's scheme and the host (and port) `match` names.
   */
  baseUrl?: string
  login?: LoginConfig
  loggedOut?: LoggedOutConfig
  csrf?: CsrfRuleConfig[]
  /** Response headers that carry a session (Spring Session X-Auth-Token): captured and sent back. */
  sessionHeaders?: string[]
  /** Request bodies up to this size are kept so the request can be replayed after a re-login. */
  replayMaxBytes?: number
  /** Seconds to wait after a failed login before trying again (doubles up to 5 minutes). */
  loginBackoffSeconds?: number
  /** Origins (scheme, host, port) whose session headers and CSRF tokens this rule keeps; the least recently used go first. Default 1000. */
  maxOrigins?: number
}

const str = { type: 'string' } as const
const strMap = { type: 'object', additionalProperties: { type: 'string' } } as const

const valueSource = {
  type: 'object',
  minProperties: 1,
  maxProperties: 1,
  additionalProperties: false,
  properties: {
    cookie: { type: 'string', minLength: 1 },
    header: { type: 'string', minLength: 1 },
    json: { type: 'string', minLength: 1 },
    html: {
      type: 'object',
      additionalProperties: false,
      minProperties: 1,
      properties: { input: { type: 'string', minLength: 1 }, meta: { type: 'string', minLength: 1 } }
    }
  }
} as const

export function autopilotSchema (secretRef: object, hostMatch: object): object {
  const step = {
    type: 'object',
    additionalProperties: false,
    required: ['url'],
    properties: {
      name: str,
      method: { type: 'string', pattern: '^[A-Z]+$' },
      url: { type: 'string', minLength: 1 },
      headers: strMap,
      form: strMap,
      json: { type: 'object' },
      extract: { type: 'object', additionalProperties: valueSource },
      loggedInUnlessBody: str,
      expect: {
        type: 'object',
        additionalProperties: false,
        properties: {
          status: { type: 'array', items: { type: 'integer', minimum: 100, maximum: 599 } },
          locationNot: str,
          bodyNot: str,
          hint: str
        }
      }
    }
  }
  return {
    type: 'array',
    items: {
      type: 'object',
      additionalProperties: false,
      required: ['match'],
      properties: {
        match: hostMatch,
        baseUrl: { type: 'string', pattern: '^https?://' },
        login: {
          type: 'object',
          additionalProperties: false,
          properties: {
            preset: { enum: ['spring-form', 'tomcat-form', 'json-token', 'basic-session'] },
            username: str,
            password: secretRef,
            loginPath: str,
            startPath: str,
            usernameField: str,
            passwordField: str,
            tokenField: str,
            steps: { type: 'array', items: step, minItems: 1 },
            token: {
              type: 'object',
              additionalProperties: false,
              required: ['from'],
              properties: { from: valueSource, header: str, prefix: str }
            }
          }
        },
        loggedOut: {
          type: 'object',
          additionalProperties: false,
          properties: {
            status: { type: 'array', items: { type: 'integer', minimum: 100, maximum: 599 } },
            redirect: str,
            body: str,
            header: { type: 'object', additionalProperties: false, required: ['name'], properties: { name: str, pattern: str } },
            cookieCleared: str
          }
        },
        csrf: {
          type: 'array',
          items: {
            type: 'object',
            additionalProperties: false,
            properties: {
              preset: { enum: ['spring', 'spring-cookie', 'tomcat'] },
              from: valueSource,
              to: { type: 'object', additionalProperties: false, minProperties: 1, properties: { header: str, form: str } },
              refreshPath: str,
              refreshHeaders: strMap
            }
          }
        },
        sessionHeaders: { type: 'array', items: { type: 'string', minLength: 1 } },
        replayMaxBytes: { type: 'integer', minimum: 0 },
        loginBackoffSeconds: { type: 'number', minimum: 0 },
        maxOrigins: { type: 'integer', minimum: 1 }
      }
    }
  }
}
