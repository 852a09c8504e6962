/**
 * Persistence of the event log (events.persist, on by default): one JSONL
 * file per profile under `<dataDir>/events/`. Appends are batched and written
 * asynchronously so the request path never waits on the disk; a lost tail on
 * a crash only loses diagnostics, never session state (the jar has its own
 * journal).
 *
 * Bounded: a file is rewritten with what the ring holds once it has twice
 * events.maxPerProfile lines or would pass events.maxFileBytes (keeping the
 * newest events within half of that), and when all files together pass
 * events.maxTotalFileBytes the least recently written ones are removed.
 */
import { mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { appendFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import type { SessionEvent } from './event-types.js'

const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/
/** How long appended events wait to be written together. */
const FLUSH_DELAY_MS = 25

interface FileState {
  pending: string[]
  /** Lines in the file, to know when to compact it. */
  lines: number
  /** Bytes in the file. */
  bytes: number
  writing: Promise<void>
  scheduled: boolean
}

export interface EventFileLimits {
  /** events.maxFileBytes: one profile's file. */
  maxFileBytes: number
  /** events.maxTotalFileBytes: all files together. */
  maxTotalFileBytes: number
}

export const DEFAULT_FILE_LIMITS: EventFileLimits = { maxFileBytes: 4 * 1024 * 1024, maxTotalFileBytes: 256 * 1024 * 1024 }

export class EventLogFile {
  private readonly dir: string
  private readonly max: number
  private readonly log: Logger
  private readonly limits: EventFileLimits
  private readonly files = new Map<string, FileState>()
  /** Bytes per file on disk, least recently written first (Map order). */
  private readonly sizes = new Map<string, number>()
  private totalBytes = 0
  /** Gives the current ring contents for a compaction rewrite. */
  snapshot: (profile: string) => readonly SessionEvent[] = () => []
  /** Whether a profile's events go to disk: false for a memory-only profile (its files must never be written). */
  persists: (profile: string) => boolean = () => true

  constructor (dataDir: string, maxPerProfile: number, log: Logger, limits: EventFileLimits = DEFAULT_FILE_LIMITS) {
    this.dir = join(dataDir, 'events')
    this.max = maxPerProfile
    this.log = log
    this.limits = limits
    mkdirSync(this.dir, { recursive: true, mode: 0o700 })
    // The files of earlier runs count towards the total, oldest first.
    const found: Array<{ profile: string, size: number, mtime: number }> = []
    for (const name of readdirSync(this.dir)) {
      if (!name.endsWith('.jsonl')) continue
      const profile = name.slice(0, -'.jsonl'.length)
      if (!SAFE_NAME.test(profile)) continue
      try {
        const st = statSync(join(this.dir, name))
        found.push({ profile, size: st.size, mtime: st.mtimeMs })
      } catch {}
    }
    found.sort((a, b) => a.mtime - b.mtime)
    for (const f of found) this.setSize(f.profile, f.size)
  }

  /** Whether the profile has a file (from an earlier run or this one). */
  has (profile: string): boolean {
    return this.sizes.has(profile)
  }

  /** The newest `max` events of a profile from a previous run (sync: once per profile, like the jar load). */
  load (profile: string): SessionEvent[] {
    if (!SAFE_NAME.test(profile)) return []
    let text: string
    try {
      text = readFileSync(this.path(profile), 'utf8')
    } catch {
      return []
    }
    const lines = text.split('\n').filter((l) => l !== '')
    const out: SessionEvent[] = []
    for (const line of lines.slice(-this.max)) {
      try {
        const e = JSON.parse(line) as SessionEvent
        if (typeof e.seq === 'number' && typeof e.type === 'string') out.push(e)
      } catch {
        // A torn last line after a crash: skip it, keep the rest.
      }
    }
    const s = this.state(profile)
    s.lines = lines.length
    s.bytes = Buffer.byteLength(text)
    return out
  }

  append (event: SessionEvent): void {
    if (!SAFE_NAME.test(event.profile) || !this.persists(event.profile)) return
    const s = this.state(event.profile)
    s.pending.push(JSON.stringify(event) + '\n')
    if (!s.scheduled) {
      s.scheduled = true
      // One append per FLUSH_DELAY_MS and profile, not per event-loop turn:
      // under load (a cookie that changes on every response) an append per
      // turn cost an open/write/close and its promises every few requests.
      // A crash loses at most this much more of the diagnostics tail.
      setTimeout(() => this.flush(event.profile, s), FLUSH_DELAY_MS).unref()
    }
  }

  /** Removes a profile's file once the writes already queued for it are done; appends not yet flushed are dropped. */
  async forget (profile: string): Promise<void> {
    const s = this.files.get(profile)
    this.files.delete(profile)
    if (s !== undefined) {
      // A flush already scheduled for this state finds nothing to write.
      s.pending = []
      await s.writing
    }
    this.totalBytes -= this.sizes.get(profile) ?? 0
    this.sizes.delete(profile)
    if (SAFE_NAME.test(profile)) await rm(this.path(profile), { force: true })
  }

  async close (): Promise<void> {
    for (const [profile, s] of this.files) if (s.pending.length > 0) this.flush(profile, s)
    await Promise.all([...this.files.values()].map(async (s) => await s.writing))
  }

  private flush (profile: string, s: FileState): void {
    s.scheduled = false
    const batch = s.pending.join('')
    const count = s.pending.length
    s.pending = []
    if (count === 0) return
    s.writing = s.writing.then(async () => {
      const size = Buffer.byteLength(batch)
      s.lines += count
      if (s.lines > this.max * 2 || s.bytes + size > this.limits.maxFileBytes) {
        // Keep the file bounded like the ring: rewrite it with what the ring
        // holds, the newest events within half the byte limit.
        const lines = this.snapshot(profile).map((e) => JSON.stringify(e) + '\n')
        let bytes = 0
        let from = lines.length
        while (from > 0 && bytes + Buffer.byteLength(lines[from - 1]!) <= this.limits.maxFileBytes / 2) bytes += Buffer.byteLength(lines[--from]!)
        const tmp = this.path(profile) + '.tmp'
        await writeFile(tmp, lines.slice(from).join(''), { mode: 0o600 })
        await rename(tmp, this.path(profile))
        s.lines = lines.length - from
        s.bytes = bytes
      } else {
        await appendFile(this.path(profile), batch, { mode: 0o600 })
        s.bytes += size
      }
      this.setSize(profile, s.bytes)
      await this.enforceTotal(profile)
    }).catch((err: unknown) => {
      this.log.warn({ err, profile }, 'could not persist session events')
    })
  }

  /** Marks `profile` as the most recently written. */
  private setSize (profile: string, bytes: number): void {
    this.totalBytes += bytes - (this.sizes.get(profile) ?? 0)
    this.sizes.delete(profile)
    this.sizes.set(profile, bytes)
  }

  /** Removes the least recently written files (never `keep`'s) while the total is over the limit. */
  private async enforceTotal (keep: string): Promise<void> {
    for (const [profile, bytes] of this.sizes) {
      if (this.totalBytes <= this.limits.maxTotalFileBytes) return
      if (profile === keep) continue
      this.sizes.delete(profile)
      this.totalBytes -= bytes
      const s = this.files.get(profile)
      if (s !== undefined) { s.lines = 0; s.bytes = 0 }
      await rm(this.path(profile), { force: true })
      this.log.info({ profile, bytes }, 'session events file removed: events.maxTotalFileBytes reached')
    }
  }

  private state (profile: string): FileState {
    let s = this.files.get(profile)
    if (s === undefined) {
      s = { pending: [], lines: 0, bytes: 0, writing: Promise.resolve(), scheduled: false }
      this.files.set(profile, s)
    }
    return s
  }

  private path (profile: string): string {
    return join(this.dir, `${profile}.jsonl`)
  }
}
