/**
 * JarStore: where the profiles' jars are persisted. The in-memory jar
 * (SessionJar) is the same whatever the store; a store only loads a jar,
 * writes its changes, and (Redis) tells the registry about changes other
 * processes made.
 *
 * Two implementations: FileJarStore (one journal file per profile under the
 * data directory, the embedded default) and RedisJarStore (a hash per
 * profile on a Redis shared by several proxies).
 */
import type { Cookie } from 'tough-cookie'
import type { CookieChange } from '../cookie-store.js'
import type { LoadedJar, UnreadableProblem } from '../jar-files.js'

/** What the registry tells a writer about its profile. */
export interface WriterOptions {
  /** The jar's cookies now (a full rewrite, a retry). */
  cookies: () => Iterable<Cookie>
  /** The cookie now held under [domain, path, name], if any (Redis writes the current value of a changed cookie). */
  cookieAt: (domain: string, path: string, name: string) => Cookie | undefined
  /** How many cookies the jar holds, to decide when a file is compacted. */
  liveRecords: () => number
  /** A write failed (once per failed attempt, retries included). */
  onError: (err: Error, location: string) => void
  /** After every write attempt, before its callers resume: null or why it failed. */
  onWritten?: (outcome: Error | null) => void
  /** A write succeeded after failures: the store holds the full jar again. */
  onRecovered?: (location: string) => void
  /** Lines already in the file (file store). */
  existingLines?: number
  /** Start with a full rewrite (a damaged file was set aside). */
  compactFirst?: boolean
}

/**
 * The persistence of one profile. Every promise settles (never rejects) once
 * the change reached the store or failed; `lastError` then says which.
 */
export interface JarWriter {
  /** The file or Redis key, for logs and health. */
  readonly path: string
  readonly lastError: Error | null
  append: (change: CookieChange) => Promise<void>
  /** Writes the whole jar again on the next flush. */
  requestCompaction: () => Promise<void>
  flush: () => Promise<void>
  /** Flushes and frees what the writer holds; false when the store lacks part of the jar. */
  suspend: () => Promise<boolean>
  close: () => Promise<void>
}

/** A change another process made, to be applied to the loaded jar without writing it back. */
export interface RemoteChange {
  profile: string
  clear: boolean
  set: Cookie[]
  /** [domain, path, name] of removed cookies. */
  deleted: Array<[string, string, string]>
}

/** The store being unreachable (Redis down): health is degraded while it lasts. */
export interface StoreProblem {
  kind: 'store'
  store: string
  error: string
  since: string
}

/** One exclusive run at a time across processes (the autopilot's logins). */
export interface LoginLock {
  /**
   * Runs `fn` while holding the lock of (`profile`, `scope`), or, when
   * another process holds it, waits for that one to finish and returns
   * `{ ran: false }` once its cookies are in the local jar. A holder that
   * fails or dies lets the waiter run `fn` itself.
   */
  exclusive: <T>(profile: string, scope: string, fn: () => Promise<T>) => Promise<{ ran: true, value: T } | { ran: false }>
}

export interface JarStore {
  readonly kind: 'file' | 'redis'
  /** Synchronous part of start-up (directories, data-dir lock). */
  init: () => void
  /** Asynchronous part (connect, load the shared state); before the first request. */
  start: () => Promise<void>
  /** After every writer is closed. */
  release: () => Promise<void>
  exists: (profile: string) => boolean
  listProfiles: () => string[]
  /** One profile's jar; synchronous because a profile is opened on the request path. */
  load: (profile: string) => LoadedJar
  openWriter: (profile: string, opts: WriterOptions) => JarWriter
  /** Where `profile` lives (a file path, a Redis key). */
  locationOf: (profile: string) => string
  /** Removes the stored jar (after its writer is closed). */
  removeProfile: (profile: string) => Promise<void>
  /** Records an empty profile so it is listed after a restart. */
  createEmpty: (profile: string) => void
  isUnreadable: (profile: string) => boolean
  readonly unreadableProblems: UnreadableProblem[]
  readonly storeProblems: StoreProblem[]
  /** Set by the registry: a change made elsewhere (Redis pub/sub). */
  onRemoteChange: ((change: RemoteChange) => void) | null
  readonly loginLock: LoginLock | null
}

/** A cookie's identity inside a profile, as one string (a Redis hash field). */
export function cookieField (domain: string, path: string, name: string): string {
  return JSON.stringify([domain, path, name])
}

export function parseCookieField (field: string): [string, string, string] | null {
  try {
    const v = JSON.parse(field) as unknown
    if (Array.isArray(v) && v.length === 3 && v.every((x) => typeof x === 'string')) return v as [string, string, string]
  } catch {}
  return null
}
