/**
 * The admin API under /_session/. Only origin-form requests reach it (the
 * server sends absolute-form traffic straight to the proxy), so
 * `GET http://any-host/_session/...` through the proxy can never touch it.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Cookie } from 'tough-cookie'
import { SessionProxyError } from '../errors.js'
import { parseCookiesTxt, toCookiesTxt } from '../session/cookies-txt.js'
import { assertProfileName, type Profile, type ProfileRegistry } from '../session/profiles.js'
import { admittedWithoutCredentials } from './gate.js'

export interface AdminDeps {
  profiles: ProfileRegistry
  version: string
  startedAt: number
  /** limits.maxAdminBodyBytes: the largest cookies.txt import. */
  bodyLimit: number
}

export class ProfileNotFoundError extends SessionProxyError {
  constructor (name: string) {
    super('SP_PROFILE_NOT_FOUND', 404, `no profile named "${name}"`)
  }
}

interface ProfileParams { p: string }

export function cookieToJson (c: Cookie): Record<string, unknown> {
  const expiry = c.expiryTime()
  return {
    name: c.key,
    value: c.value,
    domain: c.domain,
    path: c.path,
    expires: expiry === undefined || !Number.isFinite(expiry) ? null : new Date(expiry).toISOString(),
    secure: c.secure,
    httpOnly: c.httpOnly,
    sameSite: c.sameSite ?? null,
    hostOnly: c.hostOnly === true
  }
}

/** The named profile if it exists (in memory, on disk or in the config); 404 otherwise. */
export function findProfile (deps: Pick<AdminDeps, 'profiles'>, name: string): Profile {
  assertProfileName(name)
  // `constructor`, `toString`, ...: the registry's `name in config.profiles`
  // would find them on Object.prototype. Only a listed profile exists.
  if (name in Object.prototype && !deps.profiles.names().includes(name)) throw new ProfileNotFoundError(name)
  const profile = deps.profiles.find(name)
  if (profile === undefined) throw new ProfileNotFoundError(name)
  return profile
}

export async function adminRoutes (app: FastifyInstance, deps: AdminDeps): Promise<void> {
  app.get('/_session/health', async (req) => {
    const status = deps.profiles.problems.length === 0 ? 'ok' : 'degraded'
    // Without the token (a Docker HEALTHCHECK): the status, nothing about the profiles.
    if (admittedWithoutCredentials(req.raw)) return { status }
    return healthDetails(status)
  })

  const healthDetails = (status: string): Record<string, unknown> => ({
    status,
    version: deps.version,
    uptimeSeconds: Math.round((Date.now() - deps.startedAt) / 1000),
    profilesLoaded: [...deps.profiles.loaded()].length,
    problems: deps.profiles.problems
  })

  app.get('/_session/profiles', async () => ({
    // One unreadable jar (SP_PROFILE_UNAVAILABLE) shows as such; it does not fail the listing.
    profiles: deps.profiles.names().map((name) => {
      try { return { name, cookies: deps.profiles.get(name).jar.size } } catch (err) { return { name, cookies: null, error: (err as { code?: string }).code ?? 'SP_INTERNAL' } }
    })
  }))

  app.get<{ Params: ProfileParams }>('/_session/profiles/:p/cookies', async (req) => {
    const profile = findProfile(deps, req.params.p)
    return { profile: profile.name, cookies: profile.jar.cookies().map(cookieToJson) }
  })

  app.delete<{ Params: ProfileParams }>('/_session/profiles/:p/cookies', async (req) => {
    const profile = findProfile(deps, req.params.p)
    const deleted = profile.jar.size
    profile.jar.clear()
    await profile.pendingWrite
    return { profile: profile.name, deleted }
  })

  app.get<{ Params: ProfileParams }>('/_session/profiles/:p/cookies.txt', async (req, reply) => {
    const profile = findProfile(deps, req.params.p)
    reply.type('text/plain; charset=utf-8')
    return toCookiesTxt(profile.jar.cookies())
  })

  // curl --data-binary sends form content types and -T sends none: take the
  // body as text whatever it claims to be.
  await app.register(async (scope) => {
    scope.removeAllContentTypeParsers()
    scope.addContentTypeParser('*', { parseAs: 'string', bodyLimit: deps.bodyLimit }, (_req, body, done) => { done(null, body) })
    scope.put<{ Params: ProfileParams, Body: string }>('/_session/profiles/:p/cookies.txt', async (req: FastifyRequest<{ Params: ProfileParams, Body: string }>, reply: FastifyReply) => {
      assertProfileName(req.params.p)
      const text = typeof req.body === 'string' ? req.body : ''
      const parsed = parseCookiesTxt(text)
      const profile = deps.profiles.get(req.params.p)
      profile.jar.clear()
      for (const c of parsed.cookies) profile.jar.store.putCookie(c, () => {})
      await profile.pendingWrite
      reply.code(200)
      return { profile: profile.name, imported: parsed.cookies.length, skippedExpired: parsed.expired }
    })
  })
}
