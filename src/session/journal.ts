/**
 * An append-only journal file with group commit. Every caller gets a promise
 * that settles once its record has reached the operating system (it then
 * survives a kill -9 of the process); a response waits for that before it is
 * delivered. Records appended in one turn of the event loop (every
 * response read in the same poll phase, all Set-Cookie lines of each) go out
 * together in one write, made in the check phase right after (setImmediate).
 *
 * The write itself is synchronous: an append to the page cache costs a few
 * microseconds, and handing it to libuv's thread pool cost more than the
 * write (a futex wake-up each way and a second turn of the loop). A write a
 * response made alone (one per response) was slower than the group commit,
 * so the batching stays: measured with 32 busy connections on a rotating
 * cookie, 0.18 journal writes and 0.67 futex calls per response, against
 * 0.31 and 1.20 with the thread-pool writes (strace -c). The cost: a data
 * directory on a stalled network disk stalls the loop for as long as the
 * write takes; the README says to keep it on a local disk.
 *
 * When the journal has grown well past the live state, the next flush
 * rewrites it as a snapshot instead: temporary file, fsync, rename, so a
 * crash leaves either the old or the new file, never half of one.
 *
 * A write that fails (read-only or full disk, EIO) is never silent: the
 * batch settles with the error, `onError` reports it, and the journal
 * retries with back-off. The retry is a full rewrite from the live state, so
 * once the disk takes writes again everything the jar holds is on disk,
 * including the changes whose writes failed; `onRecovered` then reports it.
 */
import fs, { promises as fsp } from 'node:fs'

/**
 * Open append handles are few, not one per profile: with 10,000 profiles a
 * handle each would exhaust a common 1024 descriptor limit. The least
 * recently written idle journal gives its handle back first.
 */
export class HandleBudget {
  private readonly open = new Map<Journal, true>()
  constructor (readonly max: number) {}

  /** Marks `j` as holding a handle, most recently used. */
  touch (j: Journal): void {
    this.open.delete(j)
    this.open.set(j, true)
    if (this.open.size <= this.max) return
    for (const candidate of this.open.keys()) {
      if (this.open.size <= this.max) break
      if (candidate !== j && candidate.releaseHandle()) this.open.delete(candidate)
    }
  }

  forget (j: Journal): void {
    this.open.delete(j)
  }

  /** Gives back idle handles beyond the budget (called as writes finish). */
  trim (): void {
    if (this.open.size <= this.max) return
    for (const candidate of this.open.keys()) {
      if (this.open.size <= this.max) break
      if (candidate.releaseHandle()) this.open.delete(candidate)
    }
  }
}

export interface JournalOptions {
  path: string
  /** The full current state as journal lines, used when compacting. */
  snapshot: () => string
  /** How many live records the state holds, to decide when to compact. */
  liveRecords: () => number
  /** A write failed (called once per failed attempt, retries included). */
  onError: (err: Error, path: string) => void
  /** After every write attempt, before its callers resume: null or why it failed. */
  onWritten?: (outcome: Error | null) => void
  /** A write succeeded after failures: the file holds the full state again. */
  onRecovered?: (path: string) => void
  /** First retry delay after a failure; doubles up to retryMaxMs. */
  retryBaseMs?: number
  retryMaxMs?: number
  /** Lines already in the file when it was opened. */
  existingLines?: number
  /** Start with a compaction (after a damaged file was set aside). */
  compactFirst?: boolean
  /** Shared limit on open handles. */
  budget?: HandleBudget
}

/** A journal this short is never worth rewriting (a rotating cookie would otherwise fsync every few dozen responses). */
const COMPACT_MIN_LINES = 4096

const RETRY_BASE_MS = 200
const RETRY_MAX_MS = 10_000

/** Settles once the write that carried the batch succeeded or failed (see onWritten, lastError). Never rejects. */
export type WriteOutcome = Promise<void>

interface Batch {
  promise: WriteOutcome
  resolve: () => void
}

function newBatch (): Batch {
  let resolve!: () => void
  const promise = new Promise<void>((_resolve) => { resolve = _resolve })
  return { promise, resolve }
}

export class Journal {
  readonly path: string
  private readonly opts: JournalOptions
  private fd: number | null = null
  private buffer = ''
  private batch: Batch | null = null
  private writing: Promise<void> | null = null
  private flushScheduled = false
  /** drain() is running (it may finish without ever awaiting). */
  private draining = false
  private lines: number
  private needsCompaction: boolean
  private closed = false
  /** Why the latest write failed; null once one succeeded. */
  lastError: Error | null = null
  /** Failed attempts in a row (0 when healthy). */
  failures = 0
  private retryTimer: NodeJS.Timeout | null = null

  constructor (opts: JournalOptions) {
    this.opts = opts
    this.path = opts.path
    this.lines = opts.existingLines ?? 0
    this.needsCompaction = opts.compactFirst ?? false
  }

  /** Queues one record (a single line, no newline). */
  append (line: string): WriteOutcome {
    this.buffer += line + '\n'
    this.lines++
    return this.schedule()
  }

  /** Rewrites the file from the live state on the next flush. */
  requestCompaction (): WriteOutcome {
    this.needsCompaction = true
    return this.schedule()
  }

  /** Settles once everything appended so far is written (or failed). */
  async flush (): Promise<void> {
    const pending = this.batch?.promise
    if (pending !== undefined) await pending
    while (this.writing !== null) await this.writing
  }

  /**
   * Flushes and gives the descriptor back, keeping the journal usable (a
   * later append reopens the file). False, and nothing released, when the
   * file does not hold the full state (the last write failed).
   */
  async suspend (): Promise<boolean> {
    await this.flush()
    if (this.lastError !== null || this.batch !== null || this.writing !== null) return false
    this.opts.budget?.forget(this)
    return this.releaseHandle()
  }

  async close (): Promise<void> {
    await this.flush()
    // Last chance for changes whose writes failed: one more full rewrite.
    if (this.lastError !== null) await this.requestCompaction()
    this.cancelRetry()
    this.closed = true
    this.opts.budget?.forget(this)
    this.releaseHandle()
  }

  /** Closes the append descriptor if no write is in flight; false when busy. */
  releaseHandle (): boolean {
    if (this.writing !== null) return false
    const fd = this.fd
    this.fd = null
    if (fd !== null) fs.close(fd, (err) => { if (err !== null) this.opts.onError(err, this.path) })
    return true
  }

  private schedule (): Promise<void> {
    if (this.batch === null) this.batch = newBatch()
    const promise = this.batch.promise
    if (!this.flushScheduled && this.writing === null) {
      this.flushScheduled = true
      // After this turn's I/O callbacks: every response read in the same
      // poll phase shares the one write.
      setImmediate(this.flushNow)
    }
    return promise
  }

  private readonly flushNow = (): void => {
    this.flushScheduled = false
    if (this.writing !== null || this.batch === null) return
    const run = this.drain()
    // A drain that took no await (the append descriptor open, no
    // compaction) has already finished: nothing is in flight.
    if (this.draining) this.writing = run
  }

  private shouldCompact (): boolean {
    // Compaction costs an fsync: only when the file is mostly history.
    return this.needsCompaction || this.lines > COMPACT_MIN_LINES + 4 * this.opts.liveRecords()
  }

  /** Nothing is dropped: the in-memory jar still has the change, and a full rewrite (the retry) brings the file back in line. */
  private failed (err: Error): void {
    this.needsCompaction = true
    this.lastError = err
    this.failures++
    this.opts.onError(err, this.path)
    this.scheduleRetry()
  }

  private succeeded (): void {
    if (this.lastError === null) return
    this.lastError = null
    this.failures = 0
    this.cancelRetry()
    this.opts.onRecovered?.(this.path)
  }

  private scheduleRetry (): void {
    if (this.closed || this.retryTimer !== null) return
    const base = this.opts.retryBaseMs ?? RETRY_BASE_MS
    const delay = Math.min(this.opts.retryMaxMs ?? RETRY_MAX_MS, base * 2 ** Math.min(this.failures - 1, 20))
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null
      if (!this.closed && this.lastError !== null) void this.requestCompaction()
    }, delay)
    this.retryTimer.unref()
  }

  private cancelRetry (): void {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer)
    this.retryTimer = null
  }

  private async drain (): Promise<void> {
    this.draining = true
    try {
      while (this.batch !== null) {
        const batch = this.batch
        const data = this.buffer
        this.batch = null
        this.buffer = ''
        let outcome: Error | null = null
        try {
          if (this.closed) throw new Error('journal is closed')
          if (this.shouldCompact()) {
            // The snapshot is taken now, so it already holds `data`.
            await this.compact()
          } else if (data !== '') {
            const fd = this.fd ?? await openAsync(this.path)
            this.fd = fd
            this.opts.budget?.touch(this)
            writeAllSync(fd, data)
          }
          this.succeeded()
        } catch (err) {
          outcome = err instanceof Error ? err : new Error(String(err))
          this.failed(outcome)
        } finally {
          this.opts.onWritten?.(outcome)
          batch.resolve()
        }
      }
    } finally {
      this.draining = false
      this.writing = null
      this.opts.budget?.trim()
    }
  }

  private async compact (): Promise<void> {
    const content = this.opts.snapshot()
    const tmp = `${this.path}.tmp-${process.pid}`
    try {
      const handle = await fsp.open(tmp, 'w', 0o600)
      try {
        await handle.writeFile(content)
        await handle.sync()
      } finally {
        await handle.close()
      }
      await fsp.rename(tmp, this.path)
    } catch (err) {
      // A full disk must not also keep a half-written copy.
      await fsp.unlink(tmp).catch(() => {})
      throw err
    }
    const old = this.fd
    this.fd = null
    if (old !== null) await new Promise<void>((resolve) => fs.close(old, () => resolve()))
    this.lines = content === '' ? 0 : content.split('\n').length - 1
    this.needsCompaction = false
  }
}

async function openAsync (path: string): Promise<number> {
  return await new Promise<number>((resolve, reject) => fs.open(path, 'a', 0o600, (err, fd) => { if (err !== null) reject(err); else resolve(fd) }))
}

/**
 * Writes all of `data`: a full disk can accept part of a write and refuse
 * the rest on the next call. Synchronously: an append to the page cache
 * costs a few microseconds, less than handing it to libuv's thread pool and
 * waking the loop again when it is done (see the top of the file).
 */
function writeAllSync (fd: number, data: string): void {
  const bytes = Buffer.from(data, 'utf8')
  let offset = 0
  while (offset < bytes.length) offset += fs.writeSync(fd, bytes, offset, bytes.length - offset)
}
