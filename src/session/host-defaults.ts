/**
 * Default headers and auth per upstream host (and per profile). Rules are
 * resolved once per profile and authority, then cached: the hot path only
 * looks up a ready list of headers to add where the client sent none, or,
 * for a header marked `override: true`, in place of the client's own.
 */
import { readFileSync } from 'node:fs'
import { ConfigError, SessionProxyError } from '../errors.js'
import { compileHostPattern, type HostPattern } from '../net/host-pattern.js'
import type { AuthRule, HostRule } from '../config/schema.js'
import type { SecretRef } from '../contracts/settings.js'

/**
 * [lower-case name, name, value, override]. With `override` true the header
 * replaces the client's own of that name (buildRequestHeaders drops the
 * client's); otherwise it is added only where the client sent none.
 */
export type DefaultHeader = readonly [lower: string, name: string, value: string, override?: boolean]

interface CompiledRule {
  pattern: HostPattern
  headers: DefaultHeader[]
  /** Where the rule is configured (`hosts[0]`, `profiles.alice.hosts[1]`) and its pattern: for explain. */
  where: string
  match: string
  auth: { type: AuthRule['type'], username: string | null } | null
  /** Where the Authorization value comes from, read at use (see headersOf). */
  authSource: AuthSource | null
}

/** One default header of a matching rule, with where it comes from (values of auth redacted). */
export interface DefaultHeaderSource {
  name: string
  value: string
  rule: string
  match: string
  auth: boolean
  /** The later rule whose value for the same header wins, or null when this one is sent. */
  overriddenBy: string | null
  /** Replaces the client's own header of this name (`override: true`), rather than only filling in. */
  override: boolean
}

export function readSecret (ref: SecretRef, where: string, env: NodeJS.ProcessEnv = process.env): string {
  if (ref.value !== undefined) return ref.value
  if (ref.env !== undefined) {
    const v = env[ref.env]
    if (v === undefined || v === '') throw new ConfigError(`${where}: environment variable ${ref.env} is ${v === undefined ? 'not set' : 'empty'}`)
    return v
  }
  if (ref.file !== undefined) {
    try {
      return readFileSync(ref.file, 'utf8').replace(/\r?\n$/, '')
    } catch (err) {
      throw new ConfigError(`${where}: cannot read secret file ${ref.file}: ${(err as Error).message}`)
    }
  }
  throw new ConfigError(`${where}: give one of value, env or file`)
}

/**
 * The Authorization value of an auth rule, read when a request needs it, so a
 * secret file removed (or not yet mounted) after start fails only the
 * requests to that rule's hosts (502 SP_SECRET_UNAVAILABLE naming the key),
 * never the profile's other hosts or its (re)load.
 */
function authValue (auth: AuthRule, where: string, env: NodeJS.ProcessEnv): string {
  if (auth.type === 'basic') {
    const password = readSecret(auth.password, `${where}.password`, env)
    return 'Basic ' + Buffer.from(`${auth.username}:${password}`, 'utf8').toString('base64')
  }
  return 'Bearer ' + readSecret(auth.token, `${where}.token`, env)
}

/** Auth rules whose secrets were checked: at start, when the registry builds every configured profile's rules. */
const checkedAuth = new WeakSet<AuthRule>()

interface AuthSource {
  rule: AuthRule
  where: string
  env: NodeJS.ProcessEnv
}

function compile (rule: HostRule, where: string, env: NodeJS.ProcessEnv): CompiledRule {
  const headers: DefaultHeader[] = []
  for (const [name, spec] of Object.entries(rule.headers ?? {})) {
    const value = typeof spec === 'string' ? spec : spec.value
    if (/[\r\n\0]/.test(value)) throw new ConfigError(`${where}.headers.${name}: value contains a line break or NUL`)
    headers.push(typeof spec !== 'string' && spec.override === true ? [name.toLowerCase(), name, value, true] : [name.toLowerCase(), name, value])
  }
  let authSource: AuthSource | null = null
  if (rule.auth !== undefined && rule.auth !== null) {
    authSource = { rule: rule.auth, where: `${where}.auth`, env }
    // Checked once, so a missing secret stops the start with its key; later
    // (re)loads of the profile do not read it again.
    if (!checkedAuth.has(rule.auth)) {
      authValue(rule.auth, authSource.where, env)
      checkedAuth.add(rule.auth)
    }
  }
  const about = { where, match: rule.match, auth: rule.auth == null ? null : { type: rule.auth.type, username: rule.auth.type === 'basic' ? rule.auth.username : null } }
  return { pattern: compileHostPattern(rule.match), headers, authSource, ...about }
}

/** The rule's headers with its Authorization read now; throws 502 SP_SECRET_UNAVAILABLE when the secret cannot be read. */
function headersOf (rule: CompiledRule): readonly DefaultHeader[] {
  const src = rule.authSource
  if (src === null) return rule.headers
  let value: string
  try {
    value = authValue(src.rule, src.where, src.env)
  } catch (err) {
    throw new SessionProxyError('SP_SECRET_UNAVAILABLE', 502, (err as Error).message, { cause: err })
  }
  return [...rule.headers, ['authorization', 'Authorization', value]]
}

export class HostDefaults {
  private readonly rules: CompiledRule[]
  private readonly cache = new Map<string, readonly DefaultHeader[]>()

  /** Global rules first, then the profile's: a later rule wins for the same header. */
  constructor (global: HostRule[], profile: HostRule[], profileName: string, env: NodeJS.ProcessEnv = process.env) {
    this.rules = [
      ...global.map((r, i) => compile(r, `hosts[${i}]`, env)),
      ...profile.map((r, i) => compile(r, `profiles.${profileName}.hosts[${i}]`, env))
    ]
  }

  get empty (): boolean {
    return this.rules.length === 0
  }

  /** Headers to add for `host` (lower case) and `port`, keyed by the request's authority. */
  forHost (authority: string, host: string, port: number): readonly DefaultHeader[] {
    let found = this.cache.get(authority)
    if (found !== undefined) return found
    const byName = new Map<string, DefaultHeader>()
    for (const rule of this.rules) {
      if (!rule.pattern.matches(host, port)) continue
      for (const h of headersOf(rule)) byName.set(h[0], h)
    }
    found = [...byName.values()]
    if (this.cache.size > 4096) this.cache.clear()
    this.cache.set(authority, found)
    return found
  }

  /** Every default header of the rules matching `host`/`port`, in rule order, for explain (not the hot path). */
  describe (host: string, port: number): DefaultHeaderSource[] {
    const out: DefaultHeaderSource[] = []
    const byName = new Map<string, DefaultHeaderSource>()
    for (const rule of this.rules) {
      if (!rule.pattern.matches(host, port)) continue
      const listed: readonly DefaultHeader[] = rule.authSource === null ? rule.headers : [...rule.headers, ['authorization', 'Authorization', '']]
      for (const [lower, name, value, override] of listed) {
        const auth = lower === 'authorization' && rule.auth !== null
        const shown = auth
          ? `${rule.auth!.type === 'basic' ? 'Basic' : 'Bearer'} <redacted>${rule.auth!.username !== null ? ` (user ${rule.auth!.username})` : ''}`
          : lower === 'authorization' || lower === 'cookie' ? '<redacted>' : value
        const src: DefaultHeaderSource = { name, value: shown, rule: rule.where, match: rule.match, auth, overriddenBy: null, override: override === true }
        const earlier = byName.get(lower)
        if (earlier !== undefined) earlier.overriddenBy = rule.where
        byName.set(lower, src)
        out.push(src)
      }
    }
    return out
  }
}
