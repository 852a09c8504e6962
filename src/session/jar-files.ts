/**
 * CookieJarStore: where each profile's jar lives on disk.
 *
 * One journal per profile, `<dataDir>/jars/<profile>.jsonl`, one JSON record
 * per line: {"op":"set","cookie":{...}}, {"op":"delete","key":[domain,path,name]}
 * or {"op":"clear"}. Loading replays the lines in order. A line that does not
 * parse (a torn last write, a damaged disk, a hand edit) does not stop the
 * start: the whole file is copied aside as `<file>.corrupt-<time>`, what is
 * valid is loaded, and the problem is reported. A record that parses but
 * holds a cookie no client could be sent (a CR/LF or non-latin1 value, a bad
 * name, an expiry beyond year 9999) is rejected the same way, one by one.
 * A UTF-8 byte order mark (an editor's) is not part of the first record.
 */
import { chmodSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { Cookie } from 'tough-cookie'
import { SessionProxyError } from '../errors.js'
import type { CookieChange } from './cookie-store.js'
import { HandleBudget, Journal, type JournalOptions } from './journal.js'
import { DataDirLock } from './data-dir-lock.js'
import { admitCookie } from './sendable.js'

export interface LoadProblem {
  profile: string
  file: string
  keptAs: string
  badLines: number[]
  firstError: string
}

/** A jar file the proxy could not read (EIO, EISDIR, EACCES): its profile answers 503 until it can. */
export interface UnreadableProblem {
  kind: 'unreadable'
  profile: string
  file: string
  /** The OS error, e.g. "EISDIR: illegal operation on a directory, read". */
  error: string
  code: string | null
  since: string
}

export interface LoadedJar {
  cookies: Cookie[]
  lines: number
  problem: LoadProblem | null
}

type JournalRecord =
  | { op: 'set', cookie: unknown }
  | { op: 'delete', key: [string, string, string] }
  | { op: 'clear' }

function cookieId (domain: string | null, path: string | null, key: string): string {
  return `${domain ?? ''}\u0000${path ?? ''}\u0000${key}`
}

export function changeToRecord (change: CookieChange): string {
  switch (change.type) {
    case 'set':
      return JSON.stringify({ op: 'set', cookie: change.cookie.toJSON() })
    case 'delete':
      return JSON.stringify({ op: 'delete', key: [change.cookie.domain ?? '', change.cookie.path ?? '', change.cookie.key] })
    case 'clear':
      return '{"op":"clear"}'
  }
}

export function snapshotOf (cookies: Iterable<Cookie>): string {
  let out = ''
  for (const c of cookies) out += JSON.stringify({ op: 'set', cookie: c.toJSON() }) + '\n'
  return out
}

/** Replays journal text; returns the cookies it leaves and the lines it could not use. */
export function replayJournal (text: string, now = Date.now()): { cookies: Cookie[], bad: Array<{ line: number, error: string }>, lines: number } {
  const live = new Map<string, Cookie>()
  const bad: Array<{ line: number, error: string }> = []
  const rows = (text.charCodeAt(0) === 0xFEFF ? text.slice(1) : text).split('\n')
  if (rows[rows.length - 1] === '') rows.pop()
  for (let i = 0; i < rows.length; i++) {
    const row = rows[i]!
    let record: JournalRecord
    try {
      record = JSON.parse(row) as JournalRecord
    } catch (err) {
      bad.push({ line: i + 1, error: `not JSON (${(err as Error).message})` })
      continue
    }
    if (record?.op === 'set') {
      let cookie: Cookie | undefined
      try {
        cookie = Cookie.fromJSON(record.cookie)
      } catch {
        cookie = undefined
      }
      if (cookie === undefined || typeof cookie.key !== 'string' || cookie.domain == null || cookie.path == null) {
        bad.push({ line: i + 1, error: 'not a valid cookie record' })
        continue
      }
      // The same rules as every other way into a jar: far expiries are
      // clamped, values a Cookie header cannot carry are refused.
      const unsendable = admitCookie(cookie)
      if (unsendable !== null) {
        bad.push({ line: i + 1, error: unsendable })
        continue
      }
      live.set(cookieId(cookie.domain, cookie.path, cookie.key), cookie)
    } else if (record?.op === 'delete' && Array.isArray(record.key) && record.key.length === 3) {
      live.delete(cookieId(record.key[0], record.key[1], record.key[2]))
    } else if (record?.op === 'clear') {
      live.clear()
    } else {
      bad.push({ line: i + 1, error: 'unknown record' })
    }
  }
  const cookies: Cookie[] = []
  for (const c of live.values()) {
    const expiry = c.expiryTime()
    if (expiry === undefined || expiry > now) cookies.push(c)
  }
  return { cookies, bad, lines: rows.length }
}

/** Unreadable jars listed in health at most (a disk failing under many profiles). */
const MAX_UNREADABLE_TRACKED = 100

export class CookieJarStore {
  readonly dir: string
  private readonly handles = new HandleBudget(128)
  private readonly lock: DataDirLock
  /** Jars that failed to read, by profile (latest first out of the cap), until a read succeeds. */
  private readonly unreadable = new Map<string, UnreadableProblem>()

  constructor (dataDir: string) {
    this.dir = join(dataDir, 'jars')
    this.lock = new DataDirLock(dataDir)
  }

  /**
   * Creates the directories, owner-only, and takes the data directory's
   * lock. Throws with the path when it cannot, naming the holder's pid when
   * another process has the directory.
   */
  init (): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 })
    chmodSync(this.dir, 0o700)
    this.lock.acquire()
  }

  /** Jar files that could not be read at their latest attempt: health is degraded while this is not empty. */
  /** Whether the profile's jar file exists but could not be read the last time it was opened. */
  isUnreadable (profile: string): boolean {
    return this.unreadable.has(profile)
  }

  get unreadableProblems (): UnreadableProblem[] {
    return [...this.unreadable.values()]
  }

  /** Gives the data directory back (after every journal is closed). */
  release (): void {
    this.lock.release()
  }

  fileOf (profile: string): string {
    return join(this.dir, `${profile}.jsonl`)
  }

  /** Whether `profile` has a jar on disk (one stat, not a directory listing). */
  exists (profile: string): boolean {
    return existsSync(this.fileOf(profile))
  }

  /** Profiles that have a jar on disk. */
  listProfiles (): string[] {
    try {
      return readdirSync(this.dir).filter((f) => f.endsWith('.jsonl')).map((f) => f.slice(0, -'.jsonl'.length))
    } catch {
      return []
    }
  }

  /**
   * Reads one profile's jar. Synchronous on purpose: it runs once per profile
   * per process, before the profile's first request, and the file is small.
   */
  load (profile: string): LoadedJar {
    const file = this.fileOf(profile)
    let text: string
    try {
      text = readFileSync(file, 'utf8')
      if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600)
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? null
      if (code === 'ENOENT') {
        this.unreadable.delete(profile)
        return { cookies: [], lines: 0, problem: null }
      }
      // Opening the profile with an empty jar would overwrite cookies it may
      // still hold on disk: refuse this profile's requests (503) until the
      // file can be read, and say so in health; other profiles are not touched.
      const message = (err as Error).message
      const since = this.unreadable.get(profile)?.since ?? new Date().toISOString()
      this.unreadable.delete(profile)
      if (this.unreadable.size >= MAX_UNREADABLE_TRACKED) this.unreadable.delete(this.unreadable.keys().next().value!)
      this.unreadable.set(profile, { kind: 'unreadable', profile, file, error: message, code, since })
      throw new SessionProxyError('SP_PROFILE_UNAVAILABLE', 503, `the cookie jar of profile "${profile}" cannot be read (${code ?? message}); see /_session/health`, { cause: err })
    }
    this.unreadable.delete(profile)
    const { cookies, bad, lines } = replayJournal(text)
    if (bad.length === 0) return { cookies, lines, problem: null }
    const keptAs = `${file}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`
    copyFileSync(file, keptAs)
    chmodSync(keptAs, 0o600)
    return {
      cookies,
      lines,
      problem: {
        profile,
        file,
        keptAs,
        badLines: bad.slice(0, 20).map((b) => b.line),
        firstError: bad[0]!.error
      }
    }
  }

  openJournal (profile: string, opts: Omit<JournalOptions, 'path' | 'budget'>): Journal {
    return new Journal({ path: this.fileOf(profile), ...opts, budget: this.handles })
  }
}
