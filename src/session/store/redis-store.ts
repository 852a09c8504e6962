/**
 * The Redis store: several proxy processes share their profiles through one
 * Redis. Each profile is a hash `<prefix>jar:<profile>` whose fields are
 * cookie identities (JSON [domain, path, name]) and whose values are the
 * cookies (tough-cookie's toJSON, every attribute and the creation time);
 * `<prefix>profiles` is the set of names.
 *
 * The hot path never waits on the network to read: each process keeps the
 * jars in memory (SessionJar) and a copy of what Redis holds for the others
 * (`mirror`). A write is one Lua script per batch that sets or deletes the
 * changed fields and publishes them on `<prefix>changes` in the same atomic
 * step, so two replicas storing different cookies of one profile at once
 * both keep theirs (a field per cookie, never a rewrite of the whole jar),
 * and every subscriber applies the change to its own jar.
 *
 * Durability: a response that changed cookies waits for the script's reply
 * (the registry's pendingWrite). With Redis down the write fails at once (the
 * client's own offline queue is off: it is unbounded and would hide the
 * outage from that wait), the response is marked persist: failed, health is
 * degraded, and the changed cookies stay queued (their identities, bounded by
 * redis.maxQueuedWrites; beyond it the profile's whole jar is re-sent) and are
 * retried with back-off and on reconnect, with their value at that time.
 *
 * On reconnect a process re-reads what it missed (pub/sub does not replay).
 * A Redis that lost its data (restarted without persistence, flushed) is
 * recognised by its missing epoch key: every process then pushes back what it
 * holds with HSETNX (the first one to push a cookie wins, none overwrites a
 * newer value another already pushed), so nothing a replica still has is lost.
 */
import { randomBytes } from 'node:crypto'
import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import { Cookie } from 'tough-cookie'
import type { RedisStoreConfig } from '../../config/schema.js'
import { ConfigError } from '../../errors.js'
import type { CookieChange } from '../cookie-store.js'
import type { LoadedJar, UnreadableProblem } from '../jar-files.js'
import { admitCookie } from '../sendable.js'
import { PROFILE_NAME_PATTERN } from '../../config/schema.js'
import { cookieField, parseCookieField, type JarStore, type JarWriter, type LoginLock, type RemoteChange, type StoreProblem, type WriterOptions } from './jar-store.js'

/**
 * KEYS[1] the profile's hash, KEYS[2] the set of profiles, KEYS[3] the
 * profile's version counter; ARGV: channel, profile, clear (1, 2 for a
 * removal, else 0), the message to publish, then field/value pairs (an empty
 * value deletes the field). One script: the writes and the publish are
 * atomic, so a subscriber never sees a change the hash does not hold. The
 * version it returns and publishes orders the changes: a process ignores a
 * message older than what it already knows of a cookie (its own write's
 * reply and another's message travel on different connections).
 */
const WRITE_SCRIPT = `
local v = redis.call('INCR', KEYS[3])
if ARGV[3] == '1' then redis.call('DEL', KEYS[1]) end
for i = 5, #ARGV, 2 do
  if ARGV[i + 1] == '' then redis.call('HDEL', KEYS[1], ARGV[i]) else redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
if ARGV[3] == '2' then redis.call('SREM', KEYS[2], ARGV[2]) else redis.call('SADD', KEYS[2], ARGV[2]) end
redis.call('PUBLISH', ARGV[1], v .. '|' .. ARGV[4])
return v`

/** Re-push after data loss: only fields Redis does not have. */
const PUSH_SCRIPT = `
redis.call('INCR', KEYS[3])
for i = 3, #ARGV, 2 do redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('PUBLISH', ARGV[1], '{"reload":' .. cjson.encode(ARGV[2]) .. '}')
return 1`

/** Compare-and-delete: only the holder releases the lock. */
const UNLOCK_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`

/** Compare-and-extend: the holder keeps the lock while its login runs. */
const RENEW_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`

interface ScriptedRedis extends Redis {
  spWrite: (hash: string, profiles: string, version: string, ...args: string[]) => Promise<number>
  spPush: (hash: string, profiles: string, version: string, ...args: string[]) => Promise<number>
  spUnlock: (key: string, token: string) => Promise<number>
  spRenew: (key: string, token: string, ttl: string) => Promise<number>
}

/** What a write publishes: r replica, p profile, c cleared first, s set fields, d deleted fields. */
interface ChangeMessage {
  r: string
  p: string
  c: 0 | 1
  s: Record<string, string>
  d: string[]
  /** Someone pushed after a data loss (or imported): re-read the profile. */
  reload?: string
}

const RETRY_BASE_MS = 100
const RETRY_MAX_MS = 5000

/** `redis://user:secret@host` as `redis://user:***@host`, for logs and health. */
export function redactUrl (url: string): string {
  try {
    const u = new URL(url)
    if (u.password !== '') u.password = '***'
    return u.toString()
  } catch {
    return 'redis://(invalid URL)'
  }
}

function parseCookie (json: unknown): Cookie | null {
  if (typeof json !== 'string') return null
  let c: Cookie | undefined
  try {
    c = Cookie.fromJSON(json)
  } catch {
    return null
  }
  if (c == null || typeof c.key !== 'string' || c.domain == null || c.path == null) return null
  return admitCookie(c) === null ? c : null
}

/**
 * The cookie a hash field holds, or null when the record is unusable: not a
 * cookie, refused by the jar's rules, or a cookie other than the one its
 * field names (applying it would leave a field no later write deletes).
 */
function cookieAtField (field: string, json: unknown): Cookie | null {
  const c = parseCookie(json)
  if (c === null || cookieField(c.domain ?? '', c.path ?? '', c.key) !== field) return null
  return c
}

const PROFILE_NAME = new RegExp(PROFILE_NAME_PATTERN)

/** A message's version further ahead than this of what a process knows is not believed: the profile is re-read instead. */
const MAX_VERSION_JUMP = 1_000_000
/** Profiles named only by messages, checked against Redis in one batch; beyond this many a full re-read is done instead. */
const MAX_DISCOVER = 1000
const DISCOVER_DELAY_MS = 20
/** A profile's unusable records are logged at most this often. */
const BAD_LOG_INTERVAL_MS = 10_000

function isRecord (v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
}

/** A published change, checked field by field; null for anything else (garbage, another format, a forged shape). */
export function parseChangeMessage (raw: string): { v: number, m: ChangeMessage } | { reload: string } | null {
  if (typeof raw !== 'string' || raw.length === 0) return null
  const bar = raw.indexOf('|')
  let m: unknown
  try {
    m = JSON.parse(bar === -1 ? raw : raw.slice(bar + 1))
  } catch {
    return null
  }
  if (!isRecord(m)) return null
  if (bar === -1) {
    return typeof m.reload === 'string' && PROFILE_NAME.test(m.reload) ? { reload: m.reload } : null
  }
  const v = Number(raw.slice(0, bar))
  if (!Number.isSafeInteger(v) || v < 1) return null
  if (typeof m.r !== 'string' || typeof m.p !== 'string' || !PROFILE_NAME.test(m.p)) return null
  if (m.c !== 0 && m.c !== 1) return null
  if (!isRecord(m.s) || !Array.isArray(m.d)) return null
  const set: Record<string, string> = Object.create(null) as Record<string, string>
  for (const [f, json] of Object.entries(m.s)) {
    if (typeof json !== 'string') return null
    set[f] = json
  }
  if (!m.d.every((f): f is string => typeof f === 'string')) return null
  return { v, m: { r: m.r, p: m.p, c: m.c, s: set, d: m.d } }
}

/** One profile as this process knows it: cookie JSON by field, and the version that set each. */
interface Known {
  fields: Map<string, string>
  versions: Map<string, number>
  /** The version of the latest clear: anything older is stale for every field. */
  floor: number
}

function newKnown (): Known {
  return { fields: new Map(), versions: new Map(), floor: 0 }
}

function newBatch (): { promise: Promise<void>, resolve: () => void } {
  let resolve!: () => void
  const promise = new Promise<void>((_resolve) => { resolve = _resolve })
  return { promise, resolve }
}

class RedisJarWriter implements JarWriter {
  readonly path: string
  lastError: Error | null = null
  failures = 0
  /** Identities of cookies changed and not yet written. */
  readonly dirty = new Set<string>()
  /** Identities in the write now in flight. */
  readonly inflight = new Set<string>()
  /** Changed elsewhere while ours was in flight: decided by version once ours is answered. */
  readonly contested = new Map<string, { v: number, json: string | null }>()
  private clearPending = false
  /** Send every cookie (a queue overflow, a retry after a full rewrite was asked for). */
  private full = false
  private batch: { promise: Promise<void>, resolve: () => void } | null = null
  private writing: Promise<void> | null = null
  private scheduled = false
  private closed = false
  private retryTimer: NodeJS.Timeout | null = null

  constructor (private readonly store: RedisJarStore, readonly profile: string, private readonly opts: WriterOptions) {
    this.path = store.hashKey(profile)
  }

  get pending (): boolean {
    return this.dirty.size > 0 || this.clearPending || this.full || this.batch !== null || this.writing !== null
  }

  async append (change: CookieChange): Promise<void> {
    if (change.type === 'clear') {
      this.store.queued -= this.dirty.size
      this.dirty.clear()
      this.clearPending = true
      this.full = false
    } else {
      const field = cookieField(change.cookie.domain ?? '', change.cookie.path ?? '', change.cookie.key)
      if (!this.dirty.has(field)) {
        if (this.store.queued >= this.store.config.maxQueuedWrites) {
          this.full = true
        } else {
          this.dirty.add(field)
          this.store.queued++
        }
      }
    }
    return await this.schedule()
  }

  async requestCompaction (): Promise<void> {
    this.full = true
    return await this.schedule()
  }

  async flush (): Promise<void> {
    const pending = this.batch?.promise
    if (pending !== undefined) await pending
    while (this.writing !== null) await this.writing
  }

  async suspend (): Promise<boolean> {
    await this.flush()
    return this.lastError === null && !this.pending
  }

  async close (): Promise<void> {
    await this.flush()
    if (this.lastError !== null) await this.requestCompaction()
    this.cancelRetry()
    this.closed = true
    this.store.forget(this)
  }

  /** Retry now (Redis is back). */
  kick (): void {
    if (this.closed || this.lastError === null) return
    this.cancelRetry()
    void this.schedule()
  }

  private async schedule (): Promise<void> {
    if (this.batch === null) this.batch = newBatch()
    const promise = this.batch.promise
    if (!this.scheduled && this.writing === null) {
      this.scheduled = true
      queueMicrotask(() => {
        this.scheduled = false
        if (this.writing === null && this.batch !== null) this.writing = this.drain()
      })
    }
    return await promise
  }

  private async drain (): Promise<void> {
    try {
      while (this.batch !== null) {
        const batch = this.batch
        this.batch = null
        const clear = this.clearPending
        const full = this.full
        const queuedFields = [...this.dirty]
        const fields = new Set(queuedFields)
        this.store.queued -= this.dirty.size
        this.dirty.clear()
        this.clearPending = false
        this.full = false
        if (full) for (const c of this.opts.cookies()) fields.add(cookieField(c.domain ?? '', c.path ?? '', c.key))
        const pairs: string[] = []
        for (const f of fields) {
          this.inflight.add(f)
          const id = parseCookieField(f)
          const c = id === null ? undefined : this.opts.cookieAt(id[0], id[1], id[2])
          pairs.push(f, c === undefined ? '' : JSON.stringify(c.toJSON()))
        }
        let outcome: Error | null = null
        try {
          if (this.closed) throw new Error('writer is closed')
          await this.store.write(this.profile, clear, pairs)
          this.succeeded()
        } catch (err) {
          outcome = err instanceof Error ? err : new Error(String(err))
          // Nothing is dropped: the identities go back to the queue (within
          // its bound, else the whole jar is sent), and the retry sends their value then.
          for (const f of queuedFields) {
            if (this.dirty.has(f)) continue
            if (this.store.queued >= this.store.config.maxQueuedWrites) {
              this.full = true
              break
            }
            this.dirty.add(f)
            this.store.queued++
          }
          this.clearPending ||= clear
          this.full ||= full
          this.failed(outcome)
        } finally {
          this.inflight.clear()
          this.opts.onWritten?.(outcome)
          batch.resolve()
        }
        if (this.contested.size > 0) this.store.settleContested(this)
      }
    } finally {
      this.writing = null
    }
  }

  private succeeded (): void {
    if (this.lastError === null) return
    this.lastError = null
    this.failures = 0
    this.cancelRetry()
    this.opts.onRecovered?.(this.path)
  }

  private failed (err: Error): void {
    this.lastError = err
    this.failures++
    this.opts.onError(err, this.path)
    if (this.closed || this.retryTimer !== null) return
    const delay = Math.min(RETRY_MAX_MS, RETRY_BASE_MS * 2 ** Math.min(this.failures - 1, 20))
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null
      if (!this.closed && this.lastError !== null) void this.schedule()
    }, delay)
    this.retryTimer.unref()
  }

  private cancelRetry (): void {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer)
    this.retryTimer = null
  }

  /** The jar now, for the reconciliation after a reconnect. */
  currentCookies (): Iterable<Cookie> {
    return this.opts.cookies()
  }
}

export class RedisJarStore implements JarStore {
  readonly kind = 'redis'
  readonly url: string
  readonly config: RedisStoreConfig
  /** Cookie identities queued for writing, all profiles (bounded by config.maxQueuedWrites). */
  queued = 0
  onRemoteChange: ((change: RemoteChange) => void) | null = null
  readonly unreadableProblems: UnreadableProblem[] = []
  readonly loginLock: LoginLock
  /** This process, so it skips its own messages. */
  readonly replicaId = randomBytes(8).toString('hex')
  private readonly log: Logger
  private main: ScriptedRedis | null = null
  private sub: Redis | null = null
  /** What Redis holds, per profile, as far as this process knows. */
  private readonly mirror = new Map<string, Known>()
  /**
   * The writers of profiles in memory, weakly: an unloaded profile nobody
   * holds any more must not be kept alive by its store (limits.maxProfilesLoaded).
   */
  private readonly writerRefs = new Map<string, WeakRef<RedisJarWriter>>()
  private readonly collected = new FinalizationRegistry<string>((name) => {
    if (this.writerRefs.get(name)?.deref() === undefined) this.writerRefs.delete(name)
  })

  private problem: StoreProblem | null = null
  private epoch: string | null = null
  private started = false
  private closing = false
  private resyncing: Promise<void> | null = null
  private resyncAgain = false

  constructor (url: string, config: RedisStoreConfig, log: Logger) {
    this.url = url
    this.config = config
    this.log = log
    this.loginLock = new RedisLoginLock(this)
  }

  hashKey (profile: string): string { return `${this.config.keyPrefix}jar:${profile}` }
  private get profilesKey (): string { return `${this.config.keyPrefix}profiles` }
  private get channel (): string { return `${this.config.keyPrefix}changes` }
  private get epochKey (): string { return `${this.config.keyPrefix}epoch` }
  lockKey (name: string): string { return `${this.config.keyPrefix}lock:${name}` }

  get storeProblems (): StoreProblem[] {
    return this.problem === null ? [] : [this.problem]
  }

  /** The connection for commands; throws when not started. */
  get redis (): ScriptedRedis {
    if (this.main === null) throw new Error('the Redis store is not started')
    return this.main
  }

  init (): void {}

  async start (): Promise<void> {
    // Loaded only when a Redis store is configured: the file store (the
    // default) never pays ioredis's memory at start.
    const { Redis: RedisClient } = await import('ioredis')
    const main = new RedisClient(this.url, {
      lazyConnect: true,
      // Fail a write at once while Redis is unreachable: the writer queues it
      // (bounded) and the response says it is not persisted yet.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: this.config.commandTimeoutMs,
      connectTimeout: this.config.connectTimeoutMs,
      retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000)
    }) as ScriptedRedis
    main.defineCommand('spWrite', { numberOfKeys: 3, lua: WRITE_SCRIPT })
    main.defineCommand('spPush', { numberOfKeys: 3, lua: PUSH_SCRIPT })
    main.defineCommand('spUnlock', { numberOfKeys: 1, lua: UNLOCK_SCRIPT })
    main.defineCommand('spRenew', { numberOfKeys: 1, lua: RENEW_SCRIPT })
    this.main = main
    // The first error Redis itself gave (WRONGPASS, NOAUTH, …): connect() only rejects with "Connection is closed".
    let cause: Error | null = null
    main.on('error', (err: Error) => { cause ??= err; this.down(err) })
    main.on('close', () => this.down(new Error('connection to Redis closed')))
    main.on('ready', () => { if (this.started) this.resync() })
    const failStart = async (err: unknown): Promise<never> => {
      main.disconnect()
      this.sub?.disconnect()
      const message = err instanceof Error ? err.message : String(err)
      const why = cause !== null && cause !== err && !message.includes(cause.message) ? `${message} (${cause.message})` : message
      throw new ConfigError(`cannot use store ${redactUrl(this.url)}: ${why}`, { cause: err })
    }
    try {
      await withTimeout(main.connect(), this.config.connectTimeoutMs, 'Redis did not answer')
      // ioredis's own resubscribe after a reconnect sends SUBSCRIBE without
      // handling its promise: a connection killed again at that moment
      // (CLIENT KILL, a flapping network) rejects it unhandled. So this
      // process subscribes again itself, on every 'ready', with the failure
      // handled (the next 'ready' tries again), and catches up after it.
      const sub = main.duplicate({ enableOfflineQueue: true, commandTimeout: undefined, autoResubscribe: false })
      this.sub = sub
      sub.on('error', (err: Error) => this.down(err))
      sub.on('message', (_channel: string, message: string) => this.onMessage(message))
      sub.on('ready', () => {
        if (!this.started) return
        sub.subscribe(this.channel).then(() => this.resync(), (err: Error) => this.down(err))
      })
      await withTimeout(sub.connect(), this.config.connectTimeoutMs, 'Redis did not answer')
      await sub.subscribe(this.channel)
      await this.checkEpoch()
      await this.loadAll()
    } catch (err) {
      return await failStart(err)
    }
    this.started = true
    this.log.info({ store: redactUrl(this.url), profiles: this.mirror.size, replica: this.replicaId }, 'jars are shared through Redis')
  }

  async release (): Promise<void> {
    this.closing = true
    await Promise.allSettled([this.main?.quit(), this.sub?.quit()])
    this.main?.disconnect()
    this.sub?.disconnect()
  }

  exists (profile: string): boolean { return this.mirror.has(profile) }
  listProfiles (): string[] { return [...this.mirror.keys()] }
  locationOf (profile: string): string { return this.hashKey(profile) }
  isUnreadable (): boolean { return false }

  load (profile: string): LoadedJar {
    const fields = this.mirror.get(profile)?.fields
    const cookies: Cookie[] = []
    const now = Date.now()
    let bad = 0
    for (const [f, json] of fields ?? []) {
      const c = cookieAtField(f, json)
      if (c === null) { bad++; continue }
      const expiry = c.expiryTime()
      if (expiry === undefined || expiry > now) cookies.push(c)
    }
    if (bad > 0) this.log.warn({ profile, key: this.hashKey(profile), bad }, 'Redis holds cookie records this proxy cannot use: skipped')
    return { cookies, lines: 0, problem: null }
  }

  openWriter (profile: string, opts: WriterOptions): JarWriter {
    const w = new RedisJarWriter(this, profile, opts)
    this.writerRefs.set(profile, new WeakRef(w))
    this.collected.register(w, profile)
    return w
  }

  private writer (profile: string): RedisJarWriter | undefined {
    return this.writerRefs.get(profile)?.deref()
  }

  forget (w: RedisJarWriter): void {
    if (this.writer(w.profile) === w) this.writerRefs.delete(w.profile)
  }

  async removeProfile (profile: string): Promise<void> {
    await this.write(profile, true, [], true)
    this.mirror.delete(profile)
  }

  createEmpty (profile: string): void {
    if (!this.mirror.has(profile)) this.mirror.set(profile, newKnown())
    this.redis.sadd(this.profilesKey, profile).catch((err: Error) => this.log.warn({ profile, err: err.message }, 'could not record the new profile in Redis yet'))
  }

  private versionKey (profile: string): string { return `${this.config.keyPrefix}version:${profile}` }

  /** One batch of a profile's changes: hash fields and the publish, atomically. */
  async write (profile: string, clear: boolean, pairs: string[], remove = false): Promise<void> {
    const message: ChangeMessage = { r: this.replicaId, p: profile, c: clear ? 1 : 0, s: {}, d: [] }
    for (let i = 0; i < pairs.length; i += 2) {
      if (pairs[i + 1] === '') message.d.push(pairs[i]!)
      else message.s[pairs[i]!] = pairs[i + 1]!
    }
    const v = await this.redis.spWrite(this.hashKey(profile), this.profilesKey, this.versionKey(profile), this.channel, profile, remove ? '2' : clear ? '1' : '0', JSON.stringify(message), ...pairs)
    this.apply(profile, v, message, true)
  }

  /** Writes a whole profile (import): replaces what Redis holds, and tells every replica. */
  async replaceProfile (profile: string, cookies: readonly Cookie[]): Promise<void> {
    const pairs: string[] = []
    for (const c of cookies) pairs.push(cookieField(c.domain ?? '', c.path ?? '', c.key), JSON.stringify(c.toJSON()))
    await this.write(profile, true, pairs)
  }

  /** Every profile with its cookies as Redis holds them now (export). */
  async readAll (): Promise<Map<string, Cookie[]>> {
    await this.loadAll()
    const out = new Map<string, Cookie[]>()
    for (const name of [...this.mirror.keys()].sort()) out.set(name, this.load(name).cookies)
    return out
  }

  private known (profile: string): Known {
    let k = this.mirror.get(profile)
    if (k === undefined) {
      k = newKnown()
      this.mirror.set(profile, k)
    }
    return k
  }

  /**
   * Applies a change of version `v` to what this process knows and, for
   * another process's change, to the loaded jar. A cookie known at a newer
   * version is not touched; one with a change of ours queued keeps ours
   * (written later, so newer); one with ours in flight waits for its reply.
   */
  private apply (profile: string, v: number, m: Pick<ChangeMessage, 'c' | 's' | 'd'>, own: boolean, snapshot = false): void {
    const k = this.known(profile)
    const w = this.writer(profile)
    const change: RemoteChange = { profile, clear: false, set: [], deleted: [] }
    if (m.c === 1 && v > k.floor) {
      k.fields.clear()
      k.versions.clear()
      k.floor = v
      if (!own) change.clear = true
    }
    const one = (f: string, json: string | null): void => {
      // A snapshot at the version we know is the same state; a message at it is one we applied.
      let cookie: Cookie | null = null
      if (json !== null) {
        cookie = cookieAtField(f, json)
        // Unusable: not kept, not applied (a later good write of that field still is).
        if (cookie === null) { bad++; return }
      } else if (parseCookieField(f) === null) { bad++; return }
      const knownAt = Math.max(k.floor, k.versions.get(f) ?? 0)
      if (v < knownAt || (v === knownAt && !snapshot && !(m.c === 1 && v === k.floor))) return
      if (!own && w !== undefined && w.inflight.has(f)) {
        const prior = w.contested.get(f)
        if (prior === undefined || prior.v < v) w.contested.set(f, { v, json })
        return
      }
      k.versions.set(f, v)
      if (json === null) k.fields.delete(f)
      else k.fields.set(f, json)
      if (own || w === undefined || w.dirty.has(f)) return
      if (json === null) {
        const id = parseCookieField(f)
        if (id !== null) change.deleted.push(id)
      } else if (cookie !== null) {
        change.set.push(cookie)
      }
    }
    let bad = 0
    for (const [f, json] of Object.entries(m.s)) one(f, json)
    for (const f of m.d) one(f, null)
    if (bad > 0) this.reportBad(profile, bad)
    if (w !== undefined && (change.clear || change.set.length > 0 || change.deleted.length > 0)) this.onRemoteChange?.(change)
  }

  /** After our write was answered (or failed): the other changes it raced with, by version. */
  settleContested (w: RedisJarWriter): void {
    const entries = [...w.contested]
    w.contested.clear()
    for (const [f, { v, json }] of entries) this.apply(w.profile, v, json === null ? { c: 0, s: {}, d: [f] } : { c: 0, s: { [f]: json }, d: [] }, false)
  }

  private onMessage (raw: string): void {
    // Whatever arrives on the channel: a throw here would escape into ioredis's parser.
    try {
      this.handleMessage(raw)
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'a message on the Redis changes channel could not be applied: ignored')
    }
  }

  private handleMessage (raw: string): void {
    const parsed = parseChangeMessage(raw)
    if (parsed === null) {
      this.ignoredMessages++
      const now = Date.now()
      if (now - this.lastIgnoredLog >= BAD_LOG_INTERVAL_MS) {
        this.lastIgnoredLog = now
        this.log.warn({ channel: this.channel, ignored: this.ignoredMessages, sample: String(raw).slice(0, 100) }, 'a message on the Redis changes channel is not one this proxy publishes: ignored')
      }
      return
    }
    if ('reload' in parsed) {
      if (this.mirror.has(parsed.reload) || this.writer(parsed.reload) !== undefined) void this.reread(parsed.reload).catch(() => {})
      else this.discover(parsed.reload)
      return
    }
    const { v, m } = parsed
    if (m.r === this.replicaId) return
    const empty = Object.keys(m.s).length === 0 && m.d.length === 0
    const k = this.mirror.get(m.p)
    if (m.c === 1 && empty && this.writer(m.p) === undefined) {
      // A removal or a clear of a profile not loaded here.
      this.mirror.delete(m.p)
      return
    }
    if (empty && m.c === 0) return
    if (k === undefined && this.writer(m.p) === undefined) {
      // A profile named only by a message: applied now (another replica's new profile is usable at once),
      // and checked against the set of profiles, so a flood of invented names does not stay in memory.
      this.discover(m.p)
    }
    if (k !== undefined && v > this.maxVersion(k) + MAX_VERSION_JUMP) {
      // Not a version this Redis can have given yet: re-read the truth instead of letting it freeze the cookies.
      void this.reread(m.p).catch(() => {})
      return
    }
    this.apply(m.p, v, m, false)
  }

  private maxVersion (k: Known): number {
    let max = k.floor
    for (const v of k.versions.values()) if (v > max) max = v
    return max
  }

  /** Profiles named by messages, not yet known here: one batched check against the set of profiles. */
  private readonly discovering = new Set<string>()
  private discoverAll = false
  private discoverTimer: NodeJS.Timeout | null = null
  ignoredMessages = 0
  private lastIgnoredLog = 0
  private readonly badLogged = new Map<string, number>()

  private discover (profile: string): void {
    if (this.discovering.size >= MAX_DISCOVER) this.discoverAll = true
    else this.discovering.add(profile)
    if (this.discoverTimer !== null) return
    this.discoverTimer = setTimeout(() => {
      this.discoverTimer = null
      void this.runDiscover().catch((err: Error) => this.log.warn({ err: err.message }, 'could not read profiles named on the Redis changes channel'))
    }, DISCOVER_DELAY_MS)
    this.discoverTimer.unref()
  }

  private async runDiscover (): Promise<void> {
    const names = [...this.discovering]
    const all = this.discoverAll
    this.discovering.clear()
    this.discoverAll = false
    if (this.main?.status !== 'ready') return
    if (all) { await this.loadAll(); return }
    const p = this.redis.pipeline()
    for (const n of names) p.sismember(this.profilesKey, n).hgetall(this.hashKey(n)).get(this.versionKey(n))
    const results = (await p.exec()) ?? []
    names.forEach((n, i) => {
      const [e0, member] = results[3 * i] ?? [null, 0]
      const [e1, fields] = results[3 * i + 1] ?? [null, {}]
      const [e2, version] = results[3 * i + 2] ?? [null, null]
      if (e0 !== null || e1 !== null || e2 !== null) return
      if (member === 1) this.applySnapshot(n, Number(version ?? 0), fields as Record<string, string>)
      else if (this.writer(n) === undefined) this.mirror.delete(n)
    })
  }

  /** Unusable records of a profile (in the hash or in messages): logged, at most every BAD_LOG_INTERVAL_MS per profile. */
  private reportBad (profile: string, bad: number): void {
    const now = Date.now()
    const last = this.badLogged.get(profile) ?? 0
    if (now - last < BAD_LOG_INTERVAL_MS) return
    if (this.badLogged.size > MAX_DISCOVER) this.badLogged.clear()
    this.badLogged.set(profile, now)
    this.log.warn({ profile, key: this.hashKey(profile), bad }, 'Redis holds cookie records this proxy cannot use: skipped')
  }

  /**
   * A snapshot of `profile` at version `v` (HGETALL and the counter, read
   * together): applied cookie by cookie where it is newer than what this
   * process knows, so a message seen meanwhile is not undone.
   */
  private applySnapshot (profile: string, v: number, snapshot: Record<string, string>): void {
    const k = this.known(profile)
    const w = this.writer(profile)
    const s: Record<string, string> = {}
    for (const [f, json] of Object.entries(snapshot)) if (k.fields.get(f) !== json) s[f] = json
    const gone = new Set<string>()
    for (const f of k.fields.keys()) if (!(f in snapshot)) gone.add(f)
    if (w !== undefined) {
      for (const c of w.currentCookies()) {
        const f = cookieField(c.domain ?? '', c.path ?? '', c.key)
        if (!(f in snapshot)) gone.add(f)
        else if (JSON.stringify(c.toJSON()) !== snapshot[f]) s[f] = snapshot[f]!
      }
    }
    this.apply(profile, v, { c: 0, s, d: [...gone] }, false, true)
  }

  /** Re-reads one profile and applies what this process missed. */
  async reread (profile: string): Promise<void> {
    const r = await this.redis.multi().hgetall(this.hashKey(profile)).get(this.versionKey(profile)).exec()
    if (r === null) return
    const [[e1, fields], [e2, version]] = r as [[Error | null, Record<string, string>], [Error | null, string | null]]
    if (e1 !== null) throw e1
    if (e2 !== null) throw e2
    this.applySnapshot(profile, Number(version ?? 0), fields)
  }

  private async loadAll (): Promise<void> {
    const names = await this.redis.smembers(this.profilesKey)
    const pipeline = this.redis.pipeline()
    for (const n of names) pipeline.hgetall(this.hashKey(n)).get(this.versionKey(n))
    const results = names.length === 0 ? [] : (await pipeline.exec()) ?? []
    const seen = new Set<string>()
    names.forEach((n, i) => {
      const [e1, fields] = results[2 * i] ?? [null, {}]
      const [e2, version] = results[2 * i + 1] ?? [null, null]
      if (e1 !== null) throw e1
      if (e2 !== null) throw e2
      seen.add(n)
      this.applySnapshot(n, Number(version ?? 0), fields as Record<string, string>)
    })
    for (const n of [...this.mirror.keys()]) if (!seen.has(n) && this.writer(n) === undefined) this.mirror.delete(n)
  }

  /** A missing epoch means Redis lost its data (or was flushed): push back what this process holds. */
  private async checkEpoch (): Promise<boolean> {
    const mine = randomBytes(8).toString('hex')
    await this.redis.set(this.epochKey, mine, 'NX')
    const epoch = await this.redis.get(this.epochKey)
    const lost = this.epoch !== null && epoch !== this.epoch
    this.epoch = epoch
    return lost
  }

  private async pushBack (): Promise<void> {
    const profiles = new Set([...this.mirror.keys(), ...this.writerRefs.keys()])
    let cookies = 0
    for (const p of profiles) {
      const pairs: string[] = []
      const w = this.writer(p)
      if (w !== undefined) {
        for (const c of w.currentCookies()) pairs.push(cookieField(c.domain ?? '', c.path ?? '', c.key), JSON.stringify(c.toJSON()))
      } else {
        for (const [f, v] of this.mirror.get(p)?.fields ?? []) pairs.push(f, v)
      }
      cookies += pairs.length / 2
      await this.redis.spPush(this.hashKey(p), this.profilesKey, this.versionKey(p), this.channel, p, ...pairs)
    }
    this.log.warn({ store: redactUrl(this.url), profiles: profiles.size, cookies }, 'Redis had lost the shared jars (restarted without persistence?): pushed back what this proxy holds')
  }

  private down (err: Error): void {
    if (this.closing) return
    if (this.problem === null) {
      this.problem = { kind: 'store', store: redactUrl(this.url), error: err.message, since: new Date().toISOString() }
      if (this.started) this.log.error({ store: redactUrl(this.url), err: err.message }, 'Redis is unreachable: requests use the last known cookies, changes are queued and retried')
    } else {
      this.problem.error = err.message
    }
  }

  /** After a reconnect: catch up on missed messages, send what is queued, push back after a data loss. */
  private resync (): void {
    if (this.resyncing !== null) { this.resyncAgain = true; return }
    this.resyncing = (async () => {
      do {
        this.resyncAgain = false
        try {
          if (this.main?.status !== 'ready') return
          if (await this.checkEpoch()) {
            // Redis starts counting versions again: what this process knew is no newer than anything to come.
            for (const k of this.mirror.values()) { k.versions.clear(); k.floor = 0 }
            await this.pushBack()
          }
          for (const ref of this.writerRefs.values()) ref.deref()?.kick()
          await this.loadAll()
          for (const p of [...this.writerRefs.keys()]) if (this.writer(p) !== undefined) await this.reread(p)
          if (this.problem !== null) this.log.warn({ store: redactUrl(this.url) }, 'Redis is reachable again: caught up')
          this.problem = null
        } catch (err) {
          this.down(err as Error)
          this.resyncAgain = false
          // The next 'ready' tries again; if the connection stayed up, a timer does.
          setTimeout(() => this.resync(), 500).unref()
        }
      } while (this.resyncAgain)
    })().finally(() => { this.resyncing = null })
  }
}

async function withTimeout<T> (p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([p, new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms) })])
  } finally {
    clearTimeout(timer)
  }
}

async function sleep (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}

/**
 * SET key token NX PX ttl; the holder renews it (compare-and-extend) while
 * its login runs and releases it with compare-and-delete; a holder that dies
 * lets it expire. On success the holder records its token under `<key>:done`,
 * so a waiter can tell "the login finished, use its cookies" from "the holder
 * vanished, log in yourself".
 */
class RedisLoginLock implements LoginLock {
  constructor (private readonly store: RedisJarStore) {}

  async exclusive<T> (profile: string, scope: string, fn: () => Promise<T>): Promise<{ ran: true, value: T } | { ran: false }> {
    const { config } = this.store
    const key = this.store.lockKey(`${profile}:${scope}`)
    const doneKey = `${key}:done`
    const token = randomBytes(12).toString('hex')
    const deadline = Date.now() + config.loginWaitMs
    for (;;) {
      let acquired: boolean
      let holder: string | null = null
      try {
        acquired = (await this.store.redis.set(key, token, 'PX', config.loginLockTtlMs, 'NX')) === 'OK'
        if (!acquired) holder = await this.store.redis.get(key)
      } catch {
        // Redis unreachable: logging in uncoordinated beats not logging in.
        return { ran: true, value: await fn() }
      }
      if (acquired) return { ran: true, value: await this.hold(key, doneKey, token, fn) }
      if (holder === null) continue
      // Wait for that holder to finish or vanish.
      for (;;) {
        if (Date.now() >= deadline) throw new Error(`another proxy's login of profile "${profile}" did not finish within redis.loginWaitMs (${config.loginWaitMs} ms)`)
        await sleep(Math.min(50, Math.max(1, deadline - Date.now())))
        let now: string | null
        try {
          now = await this.store.redis.get(key)
        } catch {
          return { ran: true, value: await fn() }
        }
        if (now === holder) continue
        break
      }
      let done: string | null = null
      try { done = await this.store.redis.get(doneKey) } catch {}
      if (done === holder) {
        // Its cookies are in Redis: take them now rather than when pub/sub delivers.
        await this.store.reread(profile).catch(() => {})
        return { ran: false }
      }
      // It failed or died: try to take the lock ourselves.
    }
  }

  private async hold<T> (key: string, doneKey: string, token: string, fn: () => Promise<T>): Promise<T> {
    const ttl = this.store.config.loginLockTtlMs
    const renew = setInterval(() => { this.store.redis.spRenew(key, token, String(ttl)).catch(() => {}) }, Math.max(50, Math.floor(ttl / 3)))
    renew.unref()
    try {
      const value = await fn()
      await this.store.redis.set(doneKey, token, 'PX', Math.max(ttl, this.store.config.loginWaitMs)).catch(() => {})
      return value
    } finally {
      clearInterval(renew)
      await this.store.redis.spUnlock(key, token).catch(() => {})
    }
  }
}
