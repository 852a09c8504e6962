/**
 * Profiles: isolated sessions, each with its own jar, journal and host
 * defaults. Loaded lazily on first use so start-up does not depend on how
 * many profiles are on disk.
 */
import type { Logger } from 'pino'
import { BadProfileError } from '../errors.js'
import { PROFILE_NAME_PATTERN, type Config } from '../config/schema.js'
import type { CookieChange } from './cookie-store.js'
import { changeToRecord, snapshotOf, type CookieJarStore, type LoadProblem } from './jar-files.js'
import type { Journal } from './journal.js'
import { HostDefaults } from './host-defaults.js'
import { ProfileAutopilot } from './autopilot/host-autopilot.js'
import { SessionJar, type RejectedCookie } from './session-jar.js'

const PROFILE_NAME = new RegExp(PROFILE_NAME_PATTERN)

export function assertProfileName (name: string): void {
  if (!PROFILE_NAME.test(name)) {
    throw new BadProfileError(`invalid profile name ${JSON.stringify(name.length > 80 ? name.slice(0, 80) + '…' : name)}: use 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit`)
  }
}

export interface ProfileHooks {
  /** `requestId` is the exchange whose response caused the change, or null (admin, expiry). */
  onCookieChange?: (profile: Profile, change: CookieChange, requestId: number | null) => void
  onCookieRejected?: (profile: Profile, rejected: RejectedCookie, requestId: number | null) => void
}

export class Profile {
  readonly name: string
  readonly jar: SessionJar
  readonly defaults: HostDefaults
  readonly journal: Journal
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
  /** Login, CSRF and session-header handling; null keeps the plain fast path. */
  autopilot: ProfileAutopilot | null = null

  constructor (name: string, jar: SessionJar, defaults: HostDefaults, journal: Journal) {
    this.name = name
    this.jar = jar
    this.defaults = defaults
    this.journal = journal
  }

  /** Stores Set-Cookie lines from a response of exchange `requestId`; true when the jar changed. */
  capture (setCookies: readonly string[], url: string, requestId: number): boolean {
    this.activeRequestId = requestId
    try {
      return this.jar.capture(setCookies, url)
    } finally {
      this.activeRequestId = null
    }
  }
}

export class ProfileRegistry {
  readonly problems: LoadProblem[] = []
  private readonly profiles = new Map<string, Profile>()
  private readonly sharedDefaults: HostDefaults
  private readonly config: Config
  private readonly files: CookieJarStore
  private readonly log: Logger
  /** Set by observers (events) before traffic starts. */
  readonly hooks: ProfileHooks = {}

  constructor (config: Config, files: CookieJarStore, log: Logger) {
    this.config = config
    this.files = files
    this.log = log
    // Fail at start-up, not at the first request, on a missing secret.
    this.sharedDefaults = new HostDefaults(config.hosts, [], 'default')
    for (const [name, p] of Object.entries(config.profiles)) {
      new HostDefaults(config.hosts, p.hosts ?? [], name)
      if (p.autopilot !== undefined) new ProfileAutopilot(p.autopilot, name, config.limits)
    }
  }

  /** The profile, loading its jar from disk on first use. The name must be valid. */
  get (name: string): Profile {
    const existing = this.profiles.get(name)
    if (existing !== undefined) return existing
    assertProfileName(name)
    return this.open(name)
  }

  /** A profile that exists in memory or on disk, without creating one. */
  find (name: string): Profile | undefined {
    assertProfileName(name)
    const existing = this.profiles.get(name)
    if (existing !== undefined) return existing
    if (this.files.listProfiles().includes(name) || name in this.config.profiles) return this.open(name)
    return undefined
  }

  names (): string[] {
    const all = new Set<string>([...this.profiles.keys(), ...this.files.listProfiles(), ...Object.keys(this.config.profiles)])
    return [...all].filter((n) => PROFILE_NAME.test(n)).sort()
  }

  loaded (): Iterable<Profile> {
    return this.profiles.values()
  }

  async close (): Promise<void> {
    await Promise.all([...this.profiles.values()].map(async (p) => await p.journal.close()))
  }

  private open (name: string): Profile {
    const loaded = this.files.load(name)
    if (loaded.problem !== null) {
      this.problems.push(loaded.problem)
      this.log.warn({ profile: name, file: loaded.problem.file, keptAs: loaded.problem.keptAs, badLines: loaded.problem.badLines, error: loaded.problem.firstError },
        'cookie jar file was damaged: loaded the valid records, kept the original aside')
    }
    const jar = new SessionJar(this.config.jar)
    jar.restore(loaded.cookies)
    const journal = this.files.openJournal(name, {
      snapshot: () => snapshotOf(jar.cookies()),
      liveRecords: () => jar.size,
      onError: (err, path) => this.log.error({ err, profile: name, path }, 'could not write cookie jar; will retry with a full rewrite on the next change'),
      existingLines: loaded.lines,
      compactFirst: loaded.problem !== null
    })
    const settings = this.config.profiles[name]
    // Profiles without rules of their own share one HostDefaults (and its cache).
    const defaults = settings?.hosts !== undefined && settings.hosts.length > 0 ? new HostDefaults(this.config.hosts, settings.hosts, name) : this.sharedDefaults
    const profile = new Profile(name, jar, defaults, journal)
    if (settings?.autopilot !== undefined && settings.autopilot.length > 0) profile.autopilot = new ProfileAutopilot(settings.autopilot, name, this.config.limits)
    jar.onChange = (change) => {
      // Expired cookies are dropped on load anyway; journaling them would
      // only add writes to plain reads.
      if (!(change.type === 'delete' && change.reason === 'expired')) {
        profile.pendingWrite = journal.append(changeToRecord(change))
      }
      this.hooks.onCookieChange?.(profile, change, profile.activeRequestId)
    }
    jar.onReject = (rejected) => this.hooks.onCookieRejected?.(profile, rejected, profile.activeRequestId)
    if (loaded.problem !== null) profile.pendingWrite = journal.requestCompaction()
    this.profiles.set(name, profile)
    return profile
  }
}
