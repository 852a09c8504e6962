/**
 * Per-profile session event log: a bounded ring in memory (oldest dropped
 * first), sequence numbers per profile for `since` paging and SSE resume,
 * listeners for live streaming, and optional JSONL persistence.
 *
 * `record` runs on the request path (cookie hooks fire while a response is
 * being handled), so it does constant work: build the event, push, notify.
 */
import type { Logger } from 'pino'
import type { EventInput, SessionEvent } from './event-types.js'
import { EventLogFile } from './event-log-file.js'

export interface EventsConfig {
  /** Events kept per profile; older ones are dropped. */
  maxPerProfile: number
  /** Also append events to <dataDir>/events/<profile>.jsonl and reload them at start. */
  persist: boolean
  /** Cookie names whose value change is reported as session.rotated. */
  sessionCookies: string[]
  /** A rotation this soon after login.succeeded counts as fixation protection. */
  fixationWindowMs: number
}

export type EventListener = (event: SessionEvent) => void

export interface ListOptions {
  /** Only events with seq greater than this. */
  since?: number
  /** At most this many (default 100): the oldest after `since`, or the newest when `since` is absent. */
  limit?: number
}

export interface EventPage {
  profile: string
  events: SessionEvent[]
  /** The seq of the newest event of the profile (0 when none): pass as `since` to continue. */
  lastSeq: number
  /** The oldest seq still held; an older `since` means events were dropped in between. */
  firstSeq: number
}

class Ring {
  private readonly items: Array<SessionEvent | undefined>
  private start = 0
  length = 0

  constructor (readonly capacity: number) {
    this.items = new Array<SessionEvent | undefined>(capacity)
  }

  push (e: SessionEvent): void {
    if (this.length < this.capacity) {
      this.items[(this.start + this.length) % this.capacity] = e
      this.length++
    } else {
      this.items[this.start] = e
      this.start = (this.start + 1) % this.capacity
    }
  }

  at (i: number): SessionEvent {
    return this.items[(this.start + i) % this.capacity]!
  }

  /** Index of the first event with seq > `seq` (seqs increase along the ring). */
  firstAfter (seq: number): number {
    let lo = 0
    let hi = this.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.at(mid).seq <= seq) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  toArray (): SessionEvent[] {
    const out: SessionEvent[] = []
    for (let i = 0; i < this.length; i++) out.push(this.at(i))
    return out
  }
}

interface ProfileLog {
  ring: Ring
  seq: number
  listeners: Set<EventListener>
}

export const DEFAULT_LIST_LIMIT = 100

export class SessionEvents {
  readonly config: EventsConfig
  private readonly logs = new Map<string, ProfileLog>()
  private readonly all = new Set<EventListener>()
  private readonly file: EventLogFile | null
  private readonly log: Logger

  constructor (config: EventsConfig, dataDir: string | null, log: Logger) {
    this.config = config
    this.log = log
    this.file = config.persist && dataDir !== null ? new EventLogFile(dataDir, config.maxPerProfile, log) : null
    if (this.file !== null) this.file.snapshot = (profile) => this.profileLog(profile).ring.toArray()
  }

  /**
   * Adds an event to `profile`'s log and tells the listeners. Never throws
   * because of a listener. Returns the recorded event (with its seq).
   */
  record (profile: string, input: EventInput): SessionEvent {
    const p = this.profileLog(profile)
    const event = { ...input, seq: ++p.seq, time: new Date().toISOString(), profile } as SessionEvent
    p.ring.push(event)
    this.file?.append(event)
    for (const l of p.listeners) this.notify(l, event)
    for (const l of this.all) this.notify(l, event)
    return event
  }

  list (profile: string, opts: ListOptions = {}): EventPage {
    const p = this.logs.get(profile) ?? (this.file !== null ? this.profileLog(profile) : undefined)
    if (p === undefined || p.ring.length === 0) return { profile, events: [], lastSeq: p?.seq ?? 0, firstSeq: (p?.seq ?? 0) + 1 }
    const limit = Math.max(0, Math.min(opts.limit ?? DEFAULT_LIST_LIMIT, p.ring.capacity))
    const firstSeq = p.ring.at(0).seq
    const events: SessionEvent[] = []
    if (opts.since === undefined) {
      for (let i = Math.max(0, p.ring.length - limit); i < p.ring.length; i++) events.push(p.ring.at(i))
    } else {
      for (let i = p.ring.firstAfter(opts.since); i < p.ring.length && events.length < limit; i++) events.push(p.ring.at(i))
    }
    return { profile, events, lastSeq: p.seq, firstSeq }
  }

  /** Live events of one profile, or of all profiles with `profile` null. Returns the unsubscribe function. */
  subscribe (profile: string | null, listener: EventListener): () => void {
    const set = profile === null ? this.all : this.profileLog(profile).listeners
    set.add(listener)
    return () => { set.delete(listener) }
  }

  async close (): Promise<void> {
    await this.file?.close()
  }

  private notify (listener: EventListener, event: SessionEvent): void {
    try {
      listener(event)
    } catch (err) {
      this.log.warn({ err, type: event.type }, 'session event listener failed')
    }
  }

  private profileLog (profile: string): ProfileLog {
    let p = this.logs.get(profile)
    if (p === undefined) {
      p = { ring: new Ring(this.config.maxPerProfile), seq: 0, listeners: new Set() }
      this.logs.set(profile, p)
      if (this.file !== null) {
        for (const e of this.file.load(profile)) {
          if (e.seq > p.seq) { p.ring.push(e); p.seq = e.seq }
        }
      }
    }
    return p
  }
}
