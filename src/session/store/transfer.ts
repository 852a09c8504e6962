/**
 * Export and import of every profile (`session-proxy export` / `import`):
 * one JSON document, lossless (each cookie as tough-cookie's toJSON: every
 * attribute, the creation and last-access times), cookies in creation order.
 * An import is validated whole before anything is written, so a bad file
 * changes nothing.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import type { Logger } from 'pino'
import { Cookie } from 'tough-cookie'
import type { Config, JarConfig } from '../../config/schema.js'
import { ConfigError } from '../../errors.js'
import { CookieJarStore, replayJournal, snapshotOf } from '../jar-files.js'
import { assertProfileName } from '../profiles.js'
import { admitCookie } from '../sendable.js'
import { cookieField } from './jar-store.js'
import { RedisJarStore } from './redis-store.js'

export const EXPORT_FORMAT = 'session-proxy-profiles'

export interface ExportDocument {
  format: typeof EXPORT_FORMAT
  version: 1
  exportedAt: string
  profiles: Array<{ name: string, cookies: unknown[] }>
}

function creationTime (c: Cookie): number {
  return c.creation instanceof Date ? c.creation.getTime() : 0
}

/** Oldest first; Array.prototype.sort is stable, so equal times keep the store's order. */
function inCreationOrder (cookies: Cookie[]): Cookie[] {
  return [...cookies].sort((a, b) => creationTime(a) - creationTime(b))
}

export function exportDocument (profiles: Map<string, Cookie[]>, now = new Date()): ExportDocument {
  return {
    format: EXPORT_FORMAT,
    version: 1,
    exportedAt: now.toISOString(),
    profiles: [...profiles.keys()].sort().map((name) => ({ name, cookies: inCreationOrder(profiles.get(name)!).map((c) => c.toJSON()) }))
  }
}

/** Parses and checks a whole export; throws ConfigError naming the first problem. */
export function parseExport (text: string): Map<string, Cookie[]> {
  let doc: Partial<ExportDocument>
  try {
    doc = JSON.parse(text) as Partial<ExportDocument>
  } catch (err) {
    throw new ConfigError(`not JSON: ${(err as Error).message}`)
  }
  if (doc === null || typeof doc !== 'object' || doc.format !== EXPORT_FORMAT) throw new ConfigError(`not a session-proxy export (expected "format": "${EXPORT_FORMAT}")`)
  if (doc.version !== 1) throw new ConfigError(`unsupported export version ${JSON.stringify(doc.version)} (this proxy reads version 1)`)
  if (!Array.isArray(doc.profiles)) throw new ConfigError('"profiles" must be an array')
  const out = new Map<string, Cookie[]>()
  doc.profiles.forEach((p, i) => {
    const where = `profiles[${i}]`
    if (p === null || typeof p !== 'object' || typeof p.name !== 'string' || !Array.isArray(p.cookies)) throw new ConfigError(`${where}: expected { "name": string, "cookies": [...] }`)
    try {
      assertProfileName(p.name)
    } catch (err) {
      throw new ConfigError(`${where}: ${(err as Error).message}`)
    }
    if (out.has(p.name)) throw new ConfigError(`${where}: profile "${p.name}" appears twice`)
    const seen = new Set<string>()
    const cookies = p.cookies.map((raw, j) => {
      let c: Cookie | undefined
      try {
        c = Cookie.fromJSON(raw)
      } catch {
        c = undefined
      }
      if (c == null || typeof c.key !== 'string' || c.domain == null || c.path == null) throw new ConfigError(`${where}.cookies[${j}]: not a cookie record (needs key, domain and path)`)
      const problem = admitCookie(c)
      if (problem !== null) throw new ConfigError(`${where}.cookies[${j}]: ${problem}`)
      const id = cookieField(c.domain, c.path, c.key)
      if (seen.has(id)) throw new ConfigError(`${where}.cookies[${j}]: a second cookie "${c.key}" for ${c.domain}${c.path}`)
      seen.add(id)
      return c
    })
    out.set(p.name, cookies)
  })
  return out
}

/**
 * The jar's own limits (jar.maxCookiesPerProfile, jar.maxCookiesPerDomain),
 * checked before anything is written: an import must not give a profile
 * more cookies than the proxy would ever keep (it would send them all).
 */
export function checkJarLimits (profiles: Map<string, Cookie[]>, jar: JarConfig): void {
  for (const [name, cookies] of profiles) {
    if (cookies.length > jar.maxCookiesPerProfile) throw new ConfigError(`profile "${name}": ${cookies.length} cookies, more than jar.maxCookiesPerProfile (${jar.maxCookiesPerProfile})`)
    const perDomain = new Map<string, number>()
    for (const c of cookies) {
      const d = c.domain ?? ''
      const n = (perDomain.get(d) ?? 0) + 1
      perDomain.set(d, n)
      if (n > jar.maxCookiesPerDomain) throw new ConfigError(`profile "${name}": more than jar.maxCookiesPerDomain (${jar.maxCookiesPerDomain}) cookies for ${d}`)
    }
  }
}

/** Every profile of the configured store. The file store is read without its lock: reading does not disturb a running proxy. */
export async function readProfiles (config: Config, log: Logger): Promise<Map<string, Cookie[]>> {
  const store = config.store ?? 'file'
  if (store === 'file') {
    // Read only: a running proxy's files are not touched (no damaged file set aside, no lock taken).
    const files = new CookieJarStore(config.dataDir!)
    const out = new Map<string, Cookie[]>()
    for (const name of files.listProfiles().sort()) {
      const { cookies, bad } = replayJournal(readFileSync(files.fileOf(name), 'utf8'))
      if (bad.length > 0) log.warn({ profile: name, file: files.fileOf(name), badLines: bad.slice(0, 20).map((b) => b.line), error: bad[0]!.error }, 'skipped records the proxy cannot use (the proxy itself sets the file aside at its next start)')
      out.set(name, cookies)
    }
    return out
  }
  const redis = new RedisJarStore(store, config.redis, log)
  await redis.start()
  try {
    return await redis.readAll()
  } finally {
    await redis.release()
  }
}

/**
 * Writes the profiles into the configured store, replacing those of the same
 * names (others stay). Redis: running proxies receive the change at once.
 * Files: the data directory's lock is taken, so a running proxy refuses it.
 */
export async function writeProfiles (config: Config, log: Logger, profiles: Map<string, Cookie[]>): Promise<void> {
  checkJarLimits(profiles, config.jar)
  const store = config.store ?? 'file'
  if (store === 'file') {
    const files = new CookieJarStore(config.dataDir!)
    try {
      files.init()
    } catch (err) {
      throw new ConfigError(`cannot import into data directory ${config.dataDir}: ${(err as Error).message} (stop the proxy that uses it first)`, { cause: err })
    }
    try {
      mkdirSync(files.dir, { recursive: true, mode: 0o700 })
      for (const [name, cookies] of profiles) {
        const file = files.fileOf(name)
        const tmp = `${file}.tmp-${process.pid}`
        writeFileSync(tmp, snapshotOf(cookies), { mode: 0o600 })
        renameSync(tmp, file)
      }
    } finally {
      files.release()
    }
    return
  }
  const redis = new RedisJarStore(store, config.redis, log)
  await redis.start()
  try {
    for (const [name, cookies] of profiles) await redis.replaceProfile(name, cookies)
  } finally {
    await redis.release()
  }
}
