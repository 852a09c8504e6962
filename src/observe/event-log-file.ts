/**
 * Optional persistence of the event log: one JSONL file per profile under
 * `<dataDir>/events/`. Appends are batched and written asynchronously so the
 * request path never waits on the disk; a lost tail on a crash only loses
 * diagnostics, never session state (the jar has its own journal).
 */
import { mkdirSync, readFileSync } from 'node:fs'
import { appendFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Logger } from 'pino'
import type { SessionEvent } from './event-types.js'

const SAFE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/

interface FileState {
  pending: string[]
  /** Lines in the file, to know when to compact it. */
  lines: number
  writing: Promise<void>
  scheduled: boolean
}

export class EventLogFile {
  private readonly dir: string
  private readonly max: number
  private readonly log: Logger
  private readonly files = new Map<string, FileState>()
  /** Gives the current ring contents for a compaction rewrite. */
  snapshot: (profile: string) => readonly SessionEvent[] = () => []

  constructor (dataDir: string, maxPerProfile: number, log: Logger) {
    this.dir = join(dataDir, 'events')
    this.max = maxPerProfile
    this.log = log
    mkdirSync(this.dir, { recursive: true, mode: 0o700 })
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
    this.state(profile).lines = lines.length
    return out
  }

  append (event: SessionEvent): void {
    if (!SAFE_NAME.test(event.profile)) return
    const s = this.state(event.profile)
    s.pending.push(JSON.stringify(event) + '\n')
    if (!s.scheduled) {
      s.scheduled = true
      setImmediate(() => this.flush(event.profile, s))
    }
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
      s.lines += count
      if (s.lines > this.max * 2) {
        // Keep the file bounded like the ring: rewrite it with what the ring holds.
        const events = this.snapshot(profile)
        const tmp = this.path(profile) + '.tmp'
        await writeFile(tmp, events.map((e) => JSON.stringify(e) + '\n').join(''), { mode: 0o600 })
        await rename(tmp, this.path(profile))
        s.lines = events.length
      } else {
        await appendFile(this.path(profile), batch, { mode: 0o600 })
      }
    }).catch((err: unknown) => {
      this.log.warn({ err, profile }, 'could not persist session events')
    })
  }

  private state (profile: string): FileState {
    let s = this.files.get(profile)
    if (s === undefined) {
      s = { pending: [], lines: 0, writing: Promise.resolve(), scheduled: false }
      this.files.set(profile, s)
    }
    return s
  }

  private path (profile: string): string {
    return join(this.dir, `${profile}.jsonl`)
  }
}
