/**
 * Profile lifecycle and hand editing under /_session/profiles:
 *
 *   POST   /_session/profiles                      {"name"}  201 | 409 SP_PROFILE_EXISTS
 *   DELETE /_session/profiles/{p}                            204 | 404 | 409 SP_PROFILE_DECLARED
 *   PUT    /_session/profiles/{p}/cookies/{name}   {value, domain, path?, expires?, secure?, httpOnly?, sameSite?}
 *                                                            200 the cookie | 400 SP_COOKIE_INVALID
 *                                                            (a PUT creates the profile, like PUT cookies.txt)
 *   DELETE /_session/profiles/{p}/cookies/{name}[?domain=&path=]  200 {deleted} | 404
 *   GET    /_session/profiles/{p}/session.json               cookies + headers/auth summary (secrets redacted)
 *   PUT    /_session/profiles/{p}/session.json               replaces the cookies, validated whole first
 *
 * Every write goes through the jar's store, so it fires events and is
 * journaled like a cookie from a response.
 */
import { existsSync, unlinkSync } from 'node:fs'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { Cookie } from 'tough-cookie'
import type { Config } from '../config/schema.js'
import type { SessionEvents } from '../observe/events.js'
import { BadRequestError, SessionProxyError } from '../errors.js'
import { admitCookie } from '../session/sendable.js'
import { assertProfileName, type Profile, type ProfileRegistry } from '../session/profiles.js'
import { cookieToJson, findProfile, ProfileNotFoundError } from './routes.js'

export interface LifecycleDeps {
  profiles: ProfileRegistry
  config: Config
  /** A deleted profile's events go with it. */
  events: SessionEvents
}

interface ProfileParams { p: string }
interface CookieParams { p: string, name: string }

export class CookieInvalidError extends SessionProxyError {
  constructor (message: string) {
    super('SP_COOKIE_INVALID', 400, message)
  }
}

const SAME_SITE = new Set(['strict', 'lax', 'none'])

function isRecord (v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

/**
 * One cookie from its JSON form (the shape GET /cookies lists), checked by
 * the jar's own rules (sendable.ts). `where` names it in the error.
 */
export function cookieFromJson (input: unknown, where: string, nameFromPath?: string): Cookie {
  if (!isRecord(input)) throw new CookieInvalidError(`${where}: a cookie is a JSON object`)
  const key = nameFromPath ?? input.name
  if (typeof key !== 'string') throw new CookieInvalidError(`${where}: "name" must be a string`)
  if (nameFromPath !== undefined && input.name !== undefined && input.name !== nameFromPath) throw new CookieInvalidError(`${where}: "name" ${JSON.stringify(input.name)} differs from the URL's ${JSON.stringify(nameFromPath)}`)
  const { value, domain } = input
  if (typeof value !== 'string') throw new CookieInvalidError(`${where}: "value" must be a string`)
  if (typeof domain !== 'string' || domain.replace(/^\./, '') === '') throw new CookieInvalidError(`${where}: "domain" must be a host name such as "example.com"`)
  const path = input.path ?? '/'
  if (typeof path !== 'string') throw new CookieInvalidError(`${where}: "path" must be a string starting with "/"`)
  for (const flag of ['secure', 'httpOnly', 'hostOnly'] as const) {
    if (input[flag] !== undefined && input[flag] !== null && typeof input[flag] !== 'boolean') throw new CookieInvalidError(`${where}: "${flag}" must be true or false`)
  }
  const sameSite = input.sameSite ?? null
  if (sameSite !== null && (typeof sameSite !== 'string' || !SAME_SITE.has(sameSite.toLowerCase()))) throw new CookieInvalidError(`${where}: "sameSite" must be "strict", "lax", "none" or null`)
  let expires: Date | 'Infinity' = 'Infinity'
  if (input.expires !== undefined && input.expires !== null) {
    const d = typeof input.expires === 'string' || typeof input.expires === 'number' ? new Date(input.expires) : new Date(NaN)
    if (Number.isNaN(d.getTime())) throw new CookieInvalidError(`${where}: "expires" must be an ISO date (or null for a session cookie)`)
    expires = d
  }
  const now = new Date()
  const cookie = new Cookie({
    key,
    value,
    domain: domain.replace(/^\./, '').toLowerCase(),
    path,
    expires,
    secure: input.secure === true,
    httpOnly: input.httpOnly === true,
    // A leading dot or hostOnly: false means "and subdomains", as in Set-Cookie's Domain.
    hostOnly: input.hostOnly !== undefined && input.hostOnly !== null ? input.hostOnly === true : !domain.startsWith('.'),
    sameSite: sameSite === null ? undefined : (sameSite as string).toLowerCase(),
    creation: now,
    lastAccessed: now
  })
  const problem = admitCookie(cookie)
  if (problem !== null) throw new CookieInvalidError(`${where}: ${problem}`)
  const expiry = cookie.expiryTime()
  if (expiry !== undefined && expiry <= Date.now()) throw new CookieInvalidError(`${where}: "expires" is in the past (delete the cookie instead)`)
  return cookie
}

/** Header names whose values are credentials: shown as "[redacted]". */
const SECRET_HEADER = /^(authorization|proxy-authorization|cookie|x-api-key|x-auth-token|x-csrf-token|x-xsrf-token)$|token|secret|key|password/i

export function redactHeaderValue (name: string, value: unknown): unknown {
  return SECRET_HEADER.test(name) ? '[redacted]' : value
}

/** A host rule's header value for people: a plain value, or `{ value, override }` (both redacted the same way). */
function headerSummary (name: string, v: unknown): unknown {
  if (typeof v === 'string') return redactHeaderValue(name, v)
  if (isRecord(v) && typeof v.value === 'string') return { value: redactHeaderValue(name, v.value), override: v.override === true }
  return '[redacted]'
}

/**
 * The profile's own host rules, for people: match and header names with
 * values unless they are credentials; auth as its kind and user only.
 */
function settingsSummary (config: Config, name: string): Array<Record<string, unknown>> {
  const settings = Object.hasOwn(config.profiles, name) ? config.profiles[name] : undefined
  return (settings?.hosts ?? []).map((rule) => {
    const r = rule as unknown as Record<string, unknown>
    const out: Record<string, unknown> = { match: r.match }
    if (isRecord(r.headers)) out.headers = Object.fromEntries(Object.entries(r.headers).map(([k, v]) => [k, headerSummary(k, v)]))
    if (isRecord(r.auth)) out.auth = Object.fromEntries(Object.entries(r.auth).map(([k, v]) => [k, k === 'type' || k === 'username' || k === 'user' ? (typeof v === 'string' ? v : '[redacted]') : '[redacted]']))
    return out
  })
}

export async function lifecycleRoutes (app: FastifyInstance, deps: LifecycleDeps): Promise<void> {
  const { profiles, config } = deps
  /** A PUT creates the profile, as PUT cookies.txt does (an import into a new session). */
  const profileToWrite = (name: string): Profile => {
    assertProfileName(name)
    if (name in Object.prototype && !Object.hasOwn(config.profiles, name)) throw new BadRequestError('SP_PROFILE_INVALID', `"${name}" cannot be a profile name`)
    return profiles.get(name)
  }

  app.post<{ Body: unknown }>('/_session/profiles', async (req, reply) => {
    const body = req.body
    if (!isRecord(body) || typeof body.name !== 'string') throw new BadRequestError('SP_BAD_REQUEST', 'send {"name": "PROFILE"}')
    const name = body.name
    assertProfileName(name)
    if (name in Object.prototype && !Object.hasOwn(config.profiles, name)) throw new BadRequestError('SP_PROFILE_INVALID', `"${name}" cannot be a profile name`)
    if (!profiles.create(name)) throw new SessionProxyError('SP_PROFILE_EXISTS', 409, `a profile named "${name}" exists already`)
    reply.code(201)
    return { name, cookies: 0 }
  })

  app.delete<{ Params: ProfileParams }>('/_session/profiles/:p', async (req, reply) => {
    const name = req.params.p
    findProfile(deps, name)
    if (profiles.isDeclared(name)) throw new SessionProxyError('SP_PROFILE_DECLARED', 409, `profile "${name}" is declared in the config; remove it there (its cookies: DELETE /_session/profiles/${name}/cookies)`)
    if (!await profiles.remove(name)) throw new ProfileNotFoundError(name)
    // Its events in memory, and the file after any write already queued for it.
    await deps.events.forget(name)
    // A file left by a run that persisted events when this one does not.
    const events = config.dataDir === null ? null : join(config.dataDir, 'events', `${name}.jsonl`)
    if (events !== null && existsSync(events)) {
      try { unlinkSync(events) } catch (err) { if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err }
    }
    reply.code(204)
    return null
  })

  app.put<{ Params: CookieParams, Body: unknown }>('/_session/profiles/:p/cookies/:name', async (req) => {
    assertProfileName(req.params.p)
    const cookie = cookieFromJson(req.body, `cookie ${JSON.stringify(req.params.name.slice(0, 80))}`, req.params.name)
    const profile = profileToWrite(req.params.p)
    profile.jar.store.putCookie(cookie, () => {})
    await profile.pendingWrite
    const stored = profile.jar.store.find(cookie.domain!, cookie.path!, cookie.key) ?? cookie
    return cookieToJson(stored)
  })

  app.delete<{ Params: CookieParams, Querystring: { domain?: string, path?: string } }>('/_session/profiles/:p/cookies/:name', async (req) => {
    const profile = findProfile(deps, req.params.p)
    const domain = req.query.domain?.replace(/^\./, '').toLowerCase()
    let deleted = 0
    for (const c of profile.jar.cookies()) {
      if (c.key !== req.params.name || (domain !== undefined && c.domain !== domain) || (req.query.path !== undefined && c.path !== req.query.path)) continue
      profile.jar.store.removeCookie(c.domain!, c.path!, c.key, () => {})
      deleted++
    }
    await profile.pendingWrite
    return { profile: profile.name, deleted }
  })

  app.get<{ Params: ProfileParams }>('/_session/profiles/:p/session.json', async (req, reply) => {
    const profile = findProfile(deps, req.params.p)
    reply.header('content-disposition', `attachment; filename="${profile.name}.session.json"`)
    return {
      profile: profile.name,
      about: 'session-proxy session file: edit "cookies" and PUT it back; "hosts" (headers and auth) is read-only here, from the config, secrets redacted',
      cookies: profile.jar.cookies().map(cookieToJson),
      hosts: settingsSummary(config, profile.name),
      persist: profile.persist,
      readOnly: profile.readOnly
    }
  })

  app.put<{ Params: ProfileParams, Body: unknown }>('/_session/profiles/:p/session.json', async (req) => {
    assertProfileName(req.params.p)
    const body = req.body
    if (!isRecord(body) || !Array.isArray(body.cookies)) throw new CookieInvalidError('session.json: send an object with a "cookies" array')
    // Validated whole before anything changes.
    const cookies = body.cookies.map((c, i) => cookieFromJson(c, `cookies[${i}]`))
    const profile = profileToWrite(req.params.p)
    const problems = profile.jar.replaceAll(cookies)
    if (problems.length > 0) throw new CookieInvalidError(`cookies[${problems[0]!.index}]: ${problems[0]!.problem}`)
    await profile.pendingWrite
    return { profile: profile.name, imported: cookies.length }
  })
}
