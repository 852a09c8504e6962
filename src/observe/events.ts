/**
 * Per-profile session event log: a bounded ring in memory (oldest dropped
 * first), sequence numbers per profile for `since` paging and SSE resume,
 * listeners for live streaming, and optional JSONL persistence.
 *
 * `record` runs on the request path (cookie hooks fire while a response is
 * being handled), so it does constant work: build the event, push, notify.
 */
import type { Logger } from 'pino'
import type { EventsConfig } from '../contracts/settings.js'
import type { EventInput, SessionEvent } from './event-types.js'
import { DEFAULT_FILE_LIMITS, EventLogFile } from './event-log-file.js'

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

/** Grows on demand up to `capacity` (most profiles hold a few events, not a thousand slots). */
class Ring {
  private readonly items: Array<SessionEvent | undefined> = []
  private start = 0
  length = 0

  constructor (readonly capacity: number) {}

  /** Returns the event pushed out to make room, if any. */
  push (e: SessionEvent): SessionEvent | undefined {
    if (this.length < this.capacity) {
      if (this.start === 0 && this.length === this.items.length) this.items.push(e)
      else this.items[(this.start + this.length) % this.items.length] = e
      this.length++
      return undefined
    }
    const dropped = this.items[this.start]
    this.items[this.start] = e
    this.start = (this.start + 1) % this.items.length
    return dropped
  }

  /** Drops the oldest event. */
  shift (): void {
    if (this.length === 0) return
    this.items[this.start] = undefined
    this.start = (this.start + 1) % this.items.length
    this.length--
    if (this.length === 0) { this.items.length = 0; this.start = 0 }
  }

  at (i: number): SessionEvent {
    return this.items[(this.start + i) % this.items.length]!
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

/** The last event time as text: the events of one busy millisecond share one toISOString(). */
let isoMs = 0
let isoText = ''
function isoNow (): string {
  const ms = Date.now()
  if (ms !== isoMs) {
    isoMs = ms
    isoText = new Date(ms).toISOString()
  }
  return isoText
}

export class SessionEvents {
  readonly config: EventsConfig
  private readonly logs = new Map<string, ProfileLog>()
  /** Every held event in recording order, for the cap across profiles. */
  private readonly order: Array<{ log: ProfileLog, seq: number } | undefined> = []
  private orderStart = 0
  private total = 0
  private readonly all = new Set<EventListener>()
  private readonly file: EventLogFile | null
  private readonly log: Logger

  constructor (config: EventsConfig, dataDir: string | null, log: Logger) {
    this.config = config
    this.log = log
    this.file = config.persist && dataDir !== null ? new EventLogFile(dataDir, config.maxPerProfile, log, { maxFileBytes: config.maxFileBytes ?? DEFAULT_FILE_LIMITS.maxFileBytes, maxTotalFileBytes: config.maxTotalFileBytes ?? DEFAULT_FILE_LIMITS.maxTotalFileBytes }) : null
    if (this.file !== null) this.file.snapshot = (profile) => this.logs.get(profile)?.ring.toArray() ?? []
  }

  /**
   * Adds an event to `profile`'s log and tells the listeners. Never throws
   * because of a listener. Returns the recorded event (with its seq).
   */
  record (profile: string, input: EventInput): SessionEvent {
    const p = this.profileLog(profile)
    const event = { ...input, seq: ++p.seq, time: isoNow(), profile } as SessionEvent
    if (p.ring.push(event) === undefined) this.total++
    this.order.push({ log: p, seq: event.seq })
    this.enforceTotal()
    this.file?.append(event)
    for (const l of p.listeners) this.notify(l, event)
    for (const l of this.all) this.notify(l, event)
    return event
  }

  /** Drops the oldest events anywhere while more than maxTotal are held. */
  private enforceTotal (): void {
    while (this.total > this.config.maxTotal && this.orderStart < this.order.length) {
      const oldest = this.order[this.orderStart]!
      this.order[this.orderStart++] = undefined
      // Skip entries the profile's own ring already pushed out.
      if (oldest.log.ring.length > 0 && oldest.log.ring.at(0).seq === oldest.seq) {
        oldest.log.ring.shift()
        this.total--
      }
    }
    // Entries of events a ring already dropped also pile up: compact now and then.
    if (this.orderStart > 4096 && this.orderStart * 2 > this.order.length) {
      this.order.splice(0, this.orderStart)
      this.orderStart = 0
    }
    if (this.order.length - this.orderStart > 2 * this.config.maxTotal + 4096) this.compactOrder()
  }

  /** Rebuilds `order` from the live events (rare: only when rings overwrite a lot). */
  private compactOrder (): void {
    const live: Array<{ log: ProfileLog, seq: number }> = []
    for (let i = this.orderStart; i < this.order.length; i++) {
      const e = this.order[i]!
      if (e.log.ring.length > 0 && e.log.ring.at(0).seq <= e.seq) live.push(e)
    }
    this.order.length = 0
    this.order.push(...live)
    this.orderStart = 0
  }

  list (profile: string, opts: ListOptions = {}): EventPage {
    // Only a profile with a file is loaded: asking about any name must not grow the map.
    const p = this.logs.get(profile) ?? (this.file?.has(profile) === true ? this.profileLog(profile) : undefined)
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
    if (profile === null) {
      this.all.add(listener)
      return () => { this.all.delete(listener) }
    }
    const p = this.profileLog(profile)
    p.listeners.add(listener)
    return () => {
      p.listeners.delete(listener)
      // Any valid name can be subscribed to: a log that never recorded an
      // event and has no subscribers left goes, or asking about names would
      // grow the map without bound. A log with events keeps its numbering.
      if (p.listeners.size === 0 && p.seq === 0 && this.logs.get(profile) === p) this.logs.delete(profile)
    }
  }

  /** How many profiles have a log in memory. */
  get loadedProfiles (): number {
    return this.logs.size
  }

  /**
   * Drops a deleted profile's events: its log (subscribers included: a profile
   * created again under the name starts from seq 1) and its file, after any
   * write already queued for it, so the file is gone and stays gone.
   */
  async forget (profile: string): Promise<void> {
    const p = this.logs.get(profile)
    if (p !== undefined) {
      this.logs.delete(profile)
      // The cap's bookkeeping skips entries of an empty ring.
      this.total -= p.ring.length
      while (p.ring.length > 0) p.ring.shift()
      p.listeners.clear()
    }
    await this.file?.forget(profile)
  }

  /** Persists only the profiles `filter` accepts (a memory-only profile writes no file). */
  persistOnly (filter: (profile: string) => boolean): void {
    if (this.file !== null) this.file.persists = filter
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
