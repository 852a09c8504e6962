/**
 * One process per data directory. Two proxies on one directory each keep
 * their own in-memory jars and rewrite the same files on compaction, so the
 * first compaction of one erases what the other acknowledged. The lock is a
 * file created exclusively (O_EXCL) holding the holder's pid, host and start
 * time; a second process refuses to start and names the holder.
 *
 * A lock whose holder is gone (kill -9, a crash, a power cut) is stale and
 * taken over: on the same host the pid is checked (and its start time, so a
 * reused pid is not mistaken for the holder); from another host (a container
 * or machine sharing the volume) only a heartbeat can tell, so the holder
 * touches the file every LOCK_HEARTBEAT_MS and a lock untouched for
 * LOCK_STALE_MS is stale.
 */
import { closeSync, openSync, readFileSync, renameSync, statSync, unlinkSync, utimesSync, writeSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'

export const LOCK_FILE = 'session-proxy.lock'
export const LOCK_HEARTBEAT_MS = 10_000
export const LOCK_STALE_MS = 3 * LOCK_HEARTBEAT_MS

interface LockContent {
  pid: number
  host: string
  /** The process start time from /proc (clock ticks since boot), when known. */
  procStart: string | null
  since: string
}

export class DataDirLockedError extends Error {
  constructor (readonly holder: LockContent, readonly file: string) {
    super(`it is in use by another session-proxy (pid ${holder.pid} on ${holder.host}, since ${holder.since}; lock file ${file}). Stop that process first, or give this one another --data-dir`)
  }
}

/** Paths locked by this process: a lock naming our own pid is ours only if it is in here. */
const heldHere = new Set<string>()

function procStartOf (pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // Fields after the command name (which may contain spaces and parentheses).
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    if (fields[0] === 'Z' || fields[0] === 'X') return 'dead'
    return fields[19] ?? null
  } catch {
    return null
  }
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    // EPERM: it exists, it is another user's.
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

function isStale (holder: LockContent, file: string, now: number): boolean {
  if (holder.host !== hostname()) {
    try {
      return now - statSync(file).mtimeMs > LOCK_STALE_MS
    } catch {
      return true
    }
  }
  if (holder.pid === process.pid) return !heldHere.has(file)
  if (!alive(holder.pid)) return true
  const start = procStartOf(holder.pid)
  if (start === 'dead') return true
  // Alive, but another process than the one that took the lock: a reused pid.
  return holder.procStart !== null && start !== null && start !== holder.procStart
}

function readLock (file: string): LockContent | null {
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as Partial<LockContent>
    if (typeof parsed.pid !== 'number' || typeof parsed.host !== 'string') return null
    return { pid: parsed.pid, host: parsed.host, procStart: parsed.procStart ?? null, since: parsed.since ?? 'unknown' }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw err
    return null
  }
}

export class DataDirLock {
  readonly file: string
  private timer: NodeJS.Timeout | null = null
  private held = false
  private readonly onExit = (): void => this.release()

  constructor (dataDir: string) {
    this.file = join(dataDir, LOCK_FILE)
  }

  /** Takes the lock or throws DataDirLockedError naming the holder. */
  acquire (): void {
    const content: LockContent = { pid: process.pid, host: hostname(), procStart: procStartOf(process.pid), since: new Date().toISOString() }
    for (let attempt = 0; attempt < 5; attempt++) {
      let fd: number
      try {
        fd = openSync(this.file, 'wx', 0o600)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
        this.takeOverIfStale()
        continue
      }
      try {
        writeSync(fd, JSON.stringify(content) + '\n')
      } finally {
        closeSync(fd)
      }
      this.held = true
      heldHere.add(this.file)
      this.timer = setInterval(() => this.heartbeat(), LOCK_HEARTBEAT_MS)
      this.timer.unref()
      process.once('exit', this.onExit)
      return
    }
    throw new Error(`could not take the lock file ${this.file}: other processes keep replacing it`)
  }

  /** Removes a stale lock, or throws DataDirLockedError for a live one. */
  private takeOverIfStale (): void {
    let holder: LockContent | null
    try {
      holder = readLock(this.file)
    } catch {
      return // gone meanwhile: try again
    }
    // An unreadable lock (torn write of a crashed start) is judged by age alone.
    if (holder === null) {
      holder = { pid: 0, host: '(unreadable lock file)', procStart: null, since: 'unknown' }
      try {
        if (Date.now() - statSync(this.file).mtimeMs <= LOCK_STALE_MS) throw new DataDirLockedError(holder, this.file)
      } catch (err) {
        if (err instanceof DataDirLockedError) throw err
        return
      }
    } else if (!isStale(holder, this.file, Date.now())) {
      throw new DataDirLockedError(holder, this.file)
    }
    // Set the stale file aside under a name of our own, then check it is the
    // one we judged: another starter may have replaced it meanwhile.
    const aside = `${this.file}.stale-${process.pid}`
    try {
      renameSync(this.file, aside)
    } catch {
      return
    }
    let moved: LockContent | null = null
    try { moved = readLock(aside) } catch {}
    if (moved !== null && holder.pid !== 0 && (moved.pid !== holder.pid || moved.since !== holder.since)) {
      // We moved a fresh lock of another starter: it wins; put it back.
      try { renameSync(aside, this.file) } catch {}
      throw new DataDirLockedError(moved, this.file)
    }
    try { unlinkSync(aside) } catch {}
  }

  private heartbeat (): void {
    const now = new Date()
    try { utimesSync(this.file, now, now) } catch {}
  }

  release (): void {
    if (!this.held) return
    this.held = false
    heldHere.delete(this.file)
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
    process.off('exit', this.onExit)
    try {
      const holder = readLock(this.file)
      if (holder?.pid === process.pid) unlinkSync(this.file)
    } catch {}
  }
}
