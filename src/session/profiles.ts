/**
 * Profiles: isolated sessions, each with its own jar, journal and host
 * defaults. Loaded lazily on first use so start-up does not depend on how
 * many profiles are on disk.
 *
 * Loaded profiles are bounded (limits.maxProfilesLoaded, the cookies they
 * hold together by limits.maxCookiesLoaded, and limits.profileIdleUnloadMs
 * for idle ones): the least recently used are
 * unloaded (journal flushed, descriptor closed) and read back from disk on
 * their next use. Unloading is transparent to whoever still holds the
 * Profile (an exchange in flight, a WebSocket handshake): the registry keeps
 * a weak reference, and while the object is alive it is the one that comes
 * back, so there is never a second instance of a name and no change made
 * through an old reference is lost (a change to an unloaded profile puts it
 * back). Only once nothing holds it is the next use a read from disk.
 * Profiles declared in the config are never unloaded (they are few, and
 * their autopilot keeps login state, session headers and CSRF tokens in
 * memory only); neither is a profile whose last write failed (its jar holds
 * changes the disk does not have yet).
 */
import type { Logger } from 'pino'
import type { Cookie } from 'tough-cookie'
import { BadProfileError, ConfigError } from '../errors.js'
import { PROFILE_NAME_PATTERN, type Config, type ProfileConfig } from '../config/schema.js'
import type { CookieChange, CookieTally } from './cookie-store.js'
import { CookieJarStore, type LoadProblem, type UnreadableProblem } from './jar-files.js'
import { FileJarStore } from './store/file-store.js'
import type { JarStore, JarWriter, LoginLock, RemoteChange, StoreProblem } from './store/jar-store.js'
import { HostDefaults } from './host-defaults.js'
import { ProfileAutopilot } from './autopilot/host-autopilot.js'
import { matchProfileSettings, resolveProfileSettings } from './profile-settings.js'
import { SessionJar, type RejectedCookie } from './session-jar.js'

const PROFILE_NAME = new RegExp(PROFILE_NAME_PATTERN)

export function assertProfileName (name: string): void {
  if (!PROFILE_NAME.test(name)) {
    throw new BadProfileError(`invalid profile name ${JSON.stringify(name.length > 80 ? name.slice(0, 80) + '…' : name)}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit`)
  }
}

/** A jar whose latest write did not reach the disk; cleared once a retry succeeds. */
export interface PersistProblem {
  kind: 'persist'
  profile: string
  file: string
  /** The OS error, e.g. "EROFS: read-only file system, open ...". */
  error: string
  code: string | null
  since: string
  failures: number
}

export type RegistryProblem = LoadProblem | PersistProblem | UnreadableProblem | StoreProblem

export interface ProfileHooks {
  /** `requestId` is the exchange whose response caused the change, or null (admin, expiry). */
  onCookieChange?: (profile: Profile, change: CookieChange, requestId: number | null) => void
  onCookieRejected?: (profile: Profile, rejected: RejectedCookie, requestId: number | null) => void
}

export class Profile {
  readonly name: string
  readonly jar: SessionJar
  readonly defaults: HostDefaults
  /** Where its changes are persisted (a journal file, or Redis): see store/jar-store.ts. */
  readonly journal: JarWriter
  /**
   * The write that carries the latest change; awaited before a response is
   * delivered. It never rejects: once it settles, persistError says whether
   * the change reached the disk (null) or not.
   */
  pendingWrite: Promise<void> | null = null
  /**
   * Why the latest journal write failed, or null when it succeeded. A response
   * whose cookie changes were not persisted is still delivered, with
   * `x-session-proxy-persist: failed` (PERSIST_FAILED_HEADER), and the failure
   * shows in health, metrics and the log.
   */
  persistError: Error | null = null
  /** The exchange whose Set-Cookie lines are being stored right now. */
  activeRequestId: number | null = null
  /** The URL of that exchange (the URL the cookies are stored for). */
  activeUrl: string | null = null
  /** Login, CSRF and session-header handling; null keeps the plain fast path. */
  autopilot: ProfileAutopilot | null = null
  /** Declared in the config: never unloaded. */
  pinned = false
  /** Date.now() of the latest lookup, for least-recently-used unloading. */
  lastUsed = Date.now()
  /**
   * `readOnly: true`: responses never change the jar (their Set-Cookie still
   * reaches the client). Admin writes and imports go to `jar` directly.
   */
  readOnly = false
  /** `persist: false`: the jar lives in memory only and no file is written. */
  persist = true
  /**
   * Removed (DELETE /_session/profiles/{p}). An exchange that still holds
   * this object may change its jar in memory, but nothing reaches the disk
   * and the registry never takes it back.
   */
  deleted = false
  /** Applying a change another proxy made (shared store): it is not written back. */
  applyingRemote = false

  constructor (name: string, jar: SessionJar, defaults: HostDefaults, journal: JarWriter) {
    this.name = name
    this.jar = jar
    this.defaults = defaults
    this.journal = journal
  }

  /** Stores Set-Cookie lines from a response of exchange `requestId`; true when the jar changed. */
  capture (setCookies: readonly string[], url: string, requestId: number): boolean {
    if (this.readOnly || this.deleted) return false
    this.activeRequestId = requestId
    this.activeUrl = url
    try {
      return this.jar.capture(setCookies, url)
    } finally {
      this.activeRequestId = null
      this.activeUrl = null
    }
  }
}

/** persist and readOnly from a profile's block (none: persisted, writable). */
function applyLifecycle (p: Profile, settings: ProfileConfig | undefined): void {
  p.persist = settings?.persist !== false
  p.readOnly = settings?.readOnly === true
}

export class ProfileRegistry {
  /** Damaged jar files set aside at load (until restart). */
  private readonly loadProblems: LoadProblem[] = []
  /** Jars whose latest write failed, by profile. */
  private readonly persistProblems = new Map<string, PersistProblem>()
  /** Failed journal writes since start (retries included). */
  persistFailuresTotal = 0
  /** Loaded profiles, the health route's and metrics' "loaded". */
  private readonly profiles = new Map<string, Profile>()
  /** Unloaded, journal still being flushed: held strongly until it is. */
  private readonly unloading = new Map<string, Profile>()
  /** Unloaded profiles someone may still hold (see the file comment). */
  private readonly released = new Map<string, WeakRef<Profile>>()
  /** Cookies in the loaded profiles' jars (limits.maxCookiesLoaded); the jars keep it. */
  private readonly loadedCookies: CookieTally = { cookies: 0 }
  /** Removals under way, so a second DELETE waits for the first. */
  private readonly removing = new Map<string, Promise<boolean>>()
  private readonly collected = new FinalizationRegistry<string>((name) => {
    if (this.released.get(name)?.deref() === undefined) this.released.delete(name)
  })

  private readonly sharedDefaults: HostDefaults
  private readonly config: Config
  private readonly files: JarStore
  private readonly log: Logger
  private readonly sweeper: NodeJS.Timeout | null = null
  /** Set by observers (events) before traffic starts. */
  readonly hooks: ProfileHooks = {}

  constructor (config: Config, files: CookieJarStore | JarStore, log: Logger) {
    this.config = config
    this.files = files instanceof CookieJarStore ? new FileJarStore(files) : files
    this.log = log
    this.files.onRemoteChange = (change) => this.applyRemote(change)
    // Fail at start-up, not at the first request, on a missing secret.
    this.sharedDefaults = new HostDefaults(config.hosts, [], 'default')
    for (const [name, p] of Object.entries(config.profiles)) {
      // Built once here only to validate the blocks (they throw ConfigError), so a bad one stops the start.
      void new HostDefaults(config.hosts, p.hosts ?? [], name)
      if (p.autopilot !== undefined) void new ProfileAutopilot(p.autopilot, name, config.limits, p.credentials)
      // A login's cookies must be stored for the session to exist.
      if (p.readOnly === true && (p.autopilot?.length ?? 0) > 0) throw new ConfigError(`profiles.${name}: readOnly and autopilot do not go together (the autopilot's logins store the session cookies); import the session instead (PUT /_session/profiles/${name}/cookies.txt)`)
    }
    const idleMs = config.limits.profileIdleUnloadMs
    if (idleMs > 0) {
      this.sweeper = setInterval(() => this.unloadIdle(Date.now() - idleMs), Math.max(1000, Math.min(60_000, Math.floor(idleMs / 4))))
      this.sweeper.unref()
    }
  }

  /** Load problems (damaged files, rejected records) and jars that are failing to write: health is degraded while this is not empty. */
  get problems (): RegistryProblem[] {
    const unreadable = this.files.unreadableProblems
    const store = this.files.storeProblems
    return this.persistProblems.size === 0 && unreadable.length === 0 && store.length === 0 ? this.loadProblems : [...this.loadProblems, ...this.persistProblems.values(), ...unreadable, ...store]
  }

  /** How many profiles' latest journal write failed. */
  get failingProfiles (): number {
    return this.persistProblems.size
  }

  /** The profile, loading its jar from disk on first use. The name must be valid. */
  get (name: string): Profile {
    const existing = this.profiles.get(name)
    if (existing !== undefined) {
      existing.lastUsed = Date.now()
      return existing
    }
    assertProfileName(name)
    return this.revive(name) ?? this.open(name)
  }

  /** A profile that exists in memory or on disk, without creating one. */
  find (name: string): Profile | undefined {
    assertProfileName(name)
    const existing = this.profiles.get(name) ?? this.revive(name)
    if (existing !== undefined) {
      existing.lastUsed = Date.now()
      return existing
    }
    if (matchProfileSettings(this.config.profiles, name) !== undefined || this.files.exists(name)) return this.open(name)
    return undefined
  }

  names (): string[] {
    const all = new Set<string>([...this.profiles.keys(), ...this.files.listProfiles(), ...Object.keys(this.config.profiles)])
    return [...all].filter((n) => PROFILE_NAME.test(n)).sort()
  }

  loaded (): Iterable<Profile> {
    return this.profiles.values()
  }

  /** Declared by name in the config (not removable through the API). */
  isDeclared (name: string): boolean {
    return Object.hasOwn(this.config.profiles, name)
  }

  /**
   * Every profile with its cookie count when it is in memory, else null:
   * counting an unloaded jar means reading its file, and listing 20,000
   * profiles must not read 20,000 files.
   */
  summaries (): Array<{ name: string, cookies: number | null, loaded: boolean, declared: boolean, error?: string }> {
    return this.names().map((name) => {
      const p = this.profiles.get(name) ?? this.unloading.get(name) ?? this.released.get(name)?.deref()
      const summary = { name, cookies: p === undefined ? null : p.jar.size, loaded: p !== undefined, declared: this.isDeclared(name) }
      // A jar that exists but cannot be read (SP_PROFILE_UNAVAILABLE) says so; it does not fail the listing.
      return p === undefined && this.files.isUnreadable(name) ? { ...summary, error: 'SP_PROFILE_UNAVAILABLE' } : summary
    })
  }

  /**
   * Removes a profile: its jar, its journal file, its place in the registry.
   * Returns false when there is no such profile. The caller refuses
   * declared profiles (isDeclared). The object is marked deleted first, so
   * an exchange in flight that holds it changes nothing on disk and never
   * puts it back; the journal is closed (what it had queued is written)
   * before the file goes, so no late write brings the file back. A lookup
   * of the name during the close gets the dying object, whose changes go
   * nowhere; afterwards the name starts empty.
   */
  async remove (name: string): Promise<boolean> {
    const pending = this.removing.get(name)
    if (pending !== undefined) return await pending
    const profile = this.find(name)
    if (profile === undefined) return false
    const done = (async () => {
      profile.deleted = true
      profile.pendingWrite = null
      await profile.journal.close()
      if (this.profiles.get(name) === profile) this.profiles.delete(name)
      profile.jar.countIn(null)
      if (this.unloading.get(name) === profile) this.unloading.delete(name)
      if (this.released.get(name)?.deref() === profile) this.released.delete(name)
      this.persistProblems.delete(name)
      for (let i = this.loadProblems.length - 1; i >= 0; i--) if (this.loadProblems[i]!.profile === name) this.loadProblems.splice(i, 1)
      await this.files.removeProfile(name)
      return true
    })()
    this.removing.set(name, done)
    try {
      return await done
    } finally {
      this.removing.delete(name)
    }
  }

  /** Creates an empty profile; false when one of that name exists already. */
  create (name: string): boolean {
    if (this.find(name) !== undefined) return false
    const p = this.get(name)
    // An empty journal: the profile is listed (and found) after an unload or a restart.
    if (p.persist) this.files.createEmpty(name)
    return true
  }

  async close (): Promise<void> {
    if (this.sweeper !== null) clearInterval(this.sweeper)
    const open = new Set<Profile>([...this.profiles.values(), ...this.unloading.values()])
    for (const ref of this.released.values()) {
      const p = ref.deref()
      if (p !== undefined) open.add(p)
    }
    await Promise.all([...open].map(async (p) => await p.journal.close()))
    for (const p of open) {
      if (p.journal.lastError !== null) this.log.error({ profile: p.name, path: p.journal.path, err: p.journal.lastError }, 'cookie jar changes could not be written before exit and are lost')
    }
    await this.files.release()
  }

  /** The shared store (Redis) cannot be reached now (the session_proxy_store_unreachable gauge). */
  get storeUnreachable (): boolean {
    return this.files.storeProblems.length > 0
  }

  /** Which store keeps the jars ('file' or 'redis'). */
  get storeKind (): 'file' | 'redis' {
    return this.files.kind
  }

  /** Connects the store (Redis) and loads what it shares; before the first request. */
  async start (): Promise<void> {
    await this.files.start()
  }

  /** Cross-process login coordination (Redis store), else null. */
  get loginLock (): LoginLock | null {
    return this.files.loginLock
  }

  /**
   * A change another proxy made to a loaded profile: applied to the jar as it
   * is (its Cookie-header cache follows), but not written back to the store.
   */
  private applyRemote (change: RemoteChange): void {
    const p = this.profiles.get(change.profile) ?? this.unloading.get(change.profile) ?? this.released.get(change.profile)?.deref()
    if (p === undefined || p.deleted || !p.persist) return
    p.applyingRemote = true
    try {
      if (change.clear) p.jar.clear()
      for (const [domain, path, name] of change.deleted) p.jar.store.removeCookie(domain, path, name, () => {})
      for (const c of change.set) p.jar.store.putCookie(c, () => {})
    } finally {
      p.applyingRemote = false
    }
  }

  /** Cookies held by the loaded profiles together (limits.maxCookiesLoaded). */
  get cookiesLoaded (): number {
    return this.loadedCookies.cookies
  }

  /** Whether the loaded profiles are beyond maxProfilesLoaded or maxCookiesLoaded. */
  private overLimits (): boolean {
    const limits = this.config.limits
    return this.profiles.size > limits.maxProfilesLoaded || this.loadedCookies.cookies > limits.maxCookiesLoaded
  }

  /**
   * Unloads least recently used profiles beyond the limits, and (with
   * `idleBefore`) every unpinned one not used since then.
   */
  unloadIdle (idleBefore = -Infinity, keep?: Profile): number {
    const { maxProfilesLoaded, maxCookiesLoaded } = this.config.limits
    // Over a limit, make some room at once (5%): one scan serves the next loads too.
    const maxProfiles = this.profiles.size > maxProfilesLoaded ? maxProfilesLoaded - Math.floor(maxProfilesLoaded / 20) : maxProfilesLoaded
    const maxCookies = this.loadedCookies.cookies > maxCookiesLoaded ? maxCookiesLoaded - Math.floor(maxCookiesLoaded / 20) : maxCookiesLoaded
    const candidates: Profile[] = []
    for (const p of this.profiles.values()) {
      if (!p.pinned && p !== keep && p.journal.lastError === null) candidates.push(p)
    }
    candidates.sort((a, b) => a.lastUsed - b.lastUsed)
    let unloaded = 0
    for (const p of candidates) {
      if (this.profiles.size <= maxProfiles && this.loadedCookies.cookies <= maxCookies && p.lastUsed >= idleBefore) break
      this.unload(p)
      unloaded++
    }
    return unloaded
  }

  private unload (profile: Profile): void {
    const name = profile.name
    this.profiles.delete(name)
    profile.jar.countIn(null)
    this.unloading.set(name, profile)
    this.released.set(name, new WeakRef(profile))
    void profile.journal.suspend().then((suspended) => {
      if (this.unloading.get(name) === profile) this.unloading.delete(name)
      // Not all on disk (the write failed): it stays in memory.
      if (!suspended && this.profiles.get(name) !== profile) this.reinstate(profile)
    })
  }

  /** The unloaded object of `name` if it is still alive, loaded again. */
  private revive (name: string): Profile | undefined {
    const p = this.unloading.get(name) ?? this.released.get(name)?.deref()
    if (p !== undefined) this.reinstate(p)
    return p
  }

  private reinstate (profile: Profile): void {
    this.released.delete(profile.name)
    profile.lastUsed = Date.now()
    this.profiles.set(profile.name, profile)
    profile.jar.countIn(this.loadedCookies)
    if (this.overLimits()) this.unloadIdle(-Infinity, profile)
  }

  private open (name: string): Profile {
    const loaded = this.files.load(name)
    if (loaded.problem !== null) {
      this.loadProblems.push(loaded.problem)
      this.log.warn({ profile: name, file: loaded.problem.file, keptAs: loaded.problem.keptAs, badLines: loaded.problem.badLines, error: loaded.problem.firstError },
        'cookie jar file was damaged: loaded the valid records, kept the original aside')
    }
    const jar = new SessionJar(this.config.jar)
    jar.restore(loaded.cookies)
    let profile: Profile | null = null
    const journal = this.files.openWriter(name, {
      cookies: () => jar.cookies(),
      cookieAt: (domain, path, key) => {
        // The store's own lookup (synchronous with a callback), whatever its internal layout.
        let found: Cookie | undefined
        jar.store.findCookie(domain, path, key, (_err: Error | null, c?: Cookie | null) => { found = c ?? undefined })
        return found
      },
      liveRecords: () => jar.size,
      onWritten: (err) => { if (profile !== null) profile.persistError = err },
      onError: (err, path) => this.persistFailed(name, err, path),
      onRecovered: (path) => {
        this.persistProblems.delete(name)
        this.log.warn({ profile: name, path }, 'cookie jar written again: the file holds the full jar')
      },
      existingLines: loaded.lines,
      compactFirst: loaded.problem !== null
    })
    const { settings, pinned } = resolveProfileSettings(this.config.profiles, name)
    // Profiles without rules of their own share one HostDefaults (and its cache).
    const defaults = settings?.hosts !== undefined && settings.hosts.length > 0 ? new HostDefaults(this.config.hosts, settings.hosts, name) : this.sharedDefaults
    const p = new Profile(name, jar, defaults, journal)
    profile = p
    this.collected.register(p, name)
    p.pinned = pinned
    if (settings?.autopilot !== undefined && settings.autopilot.length > 0) p.autopilot = new ProfileAutopilot(settings.autopilot, name, this.config.limits, settings.credentials)

    applyLifecycle(p, settings)
    // Memory only: a file left by an earlier run with persist on is not this session.
    if (!p.persist) jar.clear()
    jar.onChange = (change) => {
      // Removed: nothing of it reaches the disk again, nor the registry.
      if (p.deleted) return
      // Another proxy's change (shared store): already stored, and no reason to load the profile back.
      if (p.applyingRemote) {
        this.hooks.onCookieChange?.(p, change, null)
        return
      }
      // Written through a reference held across an unload: it is the live one again.
      if (this.profiles.get(name) !== p) this.reinstate(p)
      // Cookies grow in loaded jars too: the bound holds between loads.
      else if (change.type === 'set' && this.loadedCookies.cookies > this.config.limits.maxCookiesLoaded) this.unloadIdle(-Infinity, p)
      // Cookies that expire while the jar is read are dropped on load anyway;
      // journaling them would only add writes to plain reads. A deletion
      // during a response's capture is the server deleting the cookie (a
      // logout's Max-Age=0 is reported as 'expired' too): the cookie was live
      // in the file, so the deletion must reach it before the response is
      // delivered, or a restart brings the logged-out session back. A shared
      // store needs every deletion: the other replicas must drop it now.
      const expiredOnRead = change.type === 'delete' && change.reason === 'expired' && p.activeRequestId === null
      if (p.persist && !(expiredOnRead && this.files.kind === 'file')) {
        p.pendingWrite = journal.append(change)
      }
      this.hooks.onCookieChange?.(p, change, p.activeRequestId)
    }
    jar.onReject = (rejected) => this.hooks.onCookieRejected?.(p, rejected, p.activeRequestId)
    if (loaded.problem !== null && p.persist) p.pendingWrite = journal.requestCompaction()
    this.profiles.set(name, p)
    jar.countIn(this.loadedCookies)
    if (this.overLimits()) this.unloadIdle(-Infinity, p)
    return p
  }

  private persistFailed (name: string, err: Error, path: string): void {
    this.persistFailuresTotal++
    const code = (err as NodeJS.ErrnoException).code ?? null
    const existing = this.persistProblems.get(name)
    if (existing !== undefined) {
      existing.failures++
      existing.error = err.message
      existing.code = code
    } else {
      this.persistProblems.set(name, { kind: 'persist', profile: name, file: path, error: err.message, code, since: new Date().toISOString(), failures: 1 })
    }
    this.log.error({ err, profile: name, path, failures: this.persistProblems.get(name)!.failures },
      'could not write cookie jar: responses that change cookies are marked x-session-proxy-persist: failed; retrying with a full rewrite')
  }
}
