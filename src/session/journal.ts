/**
 * An append-only journal file with group commit: records appended while a
 * write is in flight go out together in the next write, and every caller gets
 * a promise that settles once its record has reached the operating system
 * (it then survives a kill -9 of the process). When the journal has grown well
 * past the live state, the next flush rewrites it as a snapshot instead:
 * temporary file, fsync, rename, so a crash leaves either the old or the new
 * file, never half of one.
 */
import { promises as fsp } from 'node:fs'
import type { FileHandle } from 'node:fs/promises'

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
  onError: (err: Error, path: string) => void
  /** Lines already in the file when it was opened. */
  existingLines?: number
  /** Start with a compaction (after a damaged file was set aside). */
  compactFirst?: boolean
  /** Shared limit on open handles. */
  budget?: HandleBudget
}

interface Batch {
  promise: Promise<void>
  resolve: () => void
}

function newBatch (): Batch {
  let resolve!: () => void
  const promise = new Promise<void>((r) => { resolve = r })
  return { promise, resolve }
}

export class Journal {
  readonly path: string
  private readonly opts: JournalOptions
  private file: FileHandle | null = null
  private buffer = ''
  private batch: Batch | null = null
  private writing: Promise<void> | null = null
  private lines: number
  private needsCompaction: boolean
  private closed = false

  constructor (opts: JournalOptions) {
    this.opts = opts
    this.path = opts.path
    this.lines = opts.existingLines ?? 0
    this.needsCompaction = opts.compactFirst ?? false
  }

  /** Queues one record (a single line, no newline). */
  append (line: string): Promise<void> {
    this.buffer += line + '\n'
    this.lines++
    if (this.batch === null) this.batch = newBatch()
    const promise = this.batch.promise
    if (this.writing === null) this.writing = this.drain()
    return promise
  }

  /** Rewrites the file from the live state on the next flush. */
  requestCompaction (): Promise<void> {
    this.needsCompaction = true
    if (this.batch === null) this.batch = newBatch()
    const promise = this.batch.promise
    if (this.writing === null) this.writing = this.drain()
    return promise
  }

  /** Settles once everything appended so far is written. */
  async flush (): Promise<void> {
    while (this.writing !== null) await this.writing
  }

  async close (): Promise<void> {
    await this.flush()
    this.closed = true
    this.opts.budget?.forget(this)
    const file = this.file
    this.file = null
    await file?.close()
  }

  /** Closes the append handle if no write is in flight; false when busy. */
  releaseHandle (): boolean {
    if (this.writing !== null) return false
    const file = this.file
    this.file = null
    file?.close().catch((err: Error) => this.opts.onError(err, this.path))
    return true
  }

  private async drain (): Promise<void> {
    try {
      while (this.batch !== null) {
        const batch = this.batch
        const data = this.buffer
        this.batch = null
        this.buffer = ''
        try {
          if (this.closed) throw new Error('journal is closed')
          const live = this.opts.liveRecords()
          if (this.needsCompaction || this.lines > 64 + 4 * live) {
            // The snapshot is taken now, so it already holds `data`.
            await this.compact()
          } else if (data !== '') {
            if (this.file === null) this.file = await fsp.open(this.path, 'a', 0o600)
            this.opts.budget?.touch(this)
            await this.file.write(data)
          }
        } catch (err) {
          // Nothing is dropped: the in-memory jar still has the change, and a
          // full rewrite on the next flush brings the file back in line.
          this.needsCompaction = true
          this.opts.onError(err as Error, this.path)
        } finally {
          batch.resolve()
        }
      }
    } finally {
      this.writing = null
      this.opts.budget?.trim()
    }
  }

  private async compact (): Promise<void> {
    const content = this.opts.snapshot()
    const tmp = `${this.path}.tmp-${process.pid}`
    const handle = await fsp.open(tmp, 'w', 0o600)
    try {
      await handle.write(content)
      await handle.sync()
    } finally {
      await handle.close()
    }
    await fsp.rename(tmp, this.path)
    const old = this.file
    this.file = null
    await old?.close()
    this.lines = content === '' ? 0 : content.split('\n').length - 1
    this.needsCompaction = false
  }
}
