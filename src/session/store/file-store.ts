/**
 * The file store (the embedded default): one journal per profile under
 * `<dataDir>/jars`, as jar-files.ts and journal.ts describe. This adapter only
 * gives them the JarStore shape; what reaches the disk is unchanged.
 */
import { unlinkSync, writeFileSync } from 'node:fs'
import type { CookieChange } from '../cookie-store.js'
import { changeToRecord, snapshotOf, type CookieJarStore, type LoadedJar, type UnreadableProblem } from '../jar-files.js'
import type { Journal } from '../journal.js'
import type { JarStore, JarWriter, StoreProblem, WriterOptions } from './jar-store.js'

class FileJarWriter implements JarWriter {
  constructor (private readonly journal: Journal) {}
  get path (): string { return this.journal.path }
  get lastError (): Error | null { return this.journal.lastError }
  async append (change: CookieChange): Promise<void> { return await this.journal.append(changeToRecord(change)) }
  async requestCompaction (): Promise<void> { return await this.journal.requestCompaction() }
  async flush (): Promise<void> { return await this.journal.flush() }
  async suspend (): Promise<boolean> { return await this.journal.suspend() }
  async close (): Promise<void> { return await this.journal.close() }
}

export class FileJarStore implements JarStore {
  readonly kind = 'file'
  readonly storeProblems: StoreProblem[] = []
  readonly loginLock = null
  onRemoteChange = null
  constructor (readonly files: CookieJarStore) {}

  init (): void { this.files.init() }
  async start (): Promise<void> {}
  async release (): Promise<void> { this.files.release() }
  exists (profile: string): boolean { return this.files.exists(profile) }
  listProfiles (): string[] { return this.files.listProfiles() }
  load (profile: string): LoadedJar { return this.files.load(profile) }
  locationOf (profile: string): string { return this.files.fileOf(profile) }
  isUnreadable (profile: string): boolean { return this.files.isUnreadable(profile) }
  get unreadableProblems (): UnreadableProblem[] { return this.files.unreadableProblems }

  openWriter (profile: string, opts: WriterOptions): JarWriter {
    const journal = this.files.openJournal(profile, {
      snapshot: () => snapshotOf(opts.cookies()),
      liveRecords: opts.liveRecords,
      onWritten: opts.onWritten,
      onError: opts.onError,
      onRecovered: opts.onRecovered,
      existingLines: opts.existingLines,
      compactFirst: opts.compactFirst
    })
    return new FileJarWriter(journal)
  }

  async removeProfile (profile: string): Promise<void> {
    try {
      unlinkSync(this.files.fileOf(profile))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
  }

  createEmpty (profile: string): void {
    writeFileSync(this.files.fileOf(profile), '', { flag: 'a', mode: 0o600 })
  }
}
