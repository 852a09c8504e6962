/**
 * Credentials files for virtual users: `profiles.<p>.credentials.file`, a CSV
 * (RFC 4180) whose header row names the columns `profile`, `username` and
 * `password` (in any order; other columns are ignored). A profile with a row
 * logs in with that row's username and password wherever its login rule sets
 * none of its own.
 *
 * The file is read at start (a bad file is a config error naming the file and
 * line) and looked at again before each login that needs it: when its size,
 * modification time or inode changed, it is parsed again, whole, and replaces
 * the table only if it is valid. A file that became unreadable or invalid
 * fails those logins (502 SP_SECRET_UNAVAILABLE, naming the file and line)
 * until it is fixed; requests never read it. One table per file path, shared
 * by every profile (1,000 virtual users read it once). Values never appear
 * in errors or logs.
 */
import { readFileSync, statSync, type Stats } from 'node:fs'
import { resolve } from 'node:path'
import type { CredentialsConfig } from '../contracts/settings.js'
import { ConfigError, SessionProxyError } from '../errors.js'

/** The largest credentials file read (a 1,000-user file is about 40 KiB). */
export const MAX_CREDENTIALS_BYTES = 16 * 1024 * 1024

export interface Credential {
  username: string
  password: string
}

/** Thrown when a profile matched a block with a credentials file but has no row in it. */
export class CredentialsMissingError extends SessionProxyError {
  constructor (profile: string, file: string) {
    super('SP_CREDENTIALS_MISSING', 502, `profile "${profile}" has no row in the credentials file ${file}: add a line "${profile},USERNAME,PASSWORD"`)
    this.name = 'CredentialsMissingError'
  }
}

/**
 * Parses CSV text (RFC 4180: quoted fields with "" for a quote and with
 * commas or line breaks inside; CRLF or LF line ends; a leading BOM).
 * Returns records with the line each starts on; blank lines are skipped.
 */
export function parseCsv (text: string, file: string): Array<{ line: number, fields: string[] }> {
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1)
  const records: Array<{ line: number, fields: string[] }> = []
  let fields: string[] = []
  let field = ''
  let line = 1
  let recordLine = 1
  let i = 0
  let quoted = false
  let fieldStarted = false
  const endRecord = (): void => {
    fields.push(field)
    if (!(fields.length === 1 && fields[0] === '' && !fieldStarted)) records.push({ line: recordLine, fields })
    fields = []
    field = ''
    fieldStarted = false
  }
  while (i < text.length) {
    const c = text[i]!
    if (quoted) {
      if (c === '"') {
        if (text[i + 1] === '"') { field += '"'; i += 2; continue }
        quoted = false
        i++
        const next = text[i]
        if (next !== undefined && next !== ',' && next !== '\n' && next !== '\r') {
          throw new ConfigError(`credentials file ${file}, line ${line}: a closing quote must end the field (write "" for a quote inside a quoted field)`)
        }
        continue
      }
      if (c === '\n') line++
      field += c
      i++
      continue
    }
    if (c === '"') {
      if (field !== '') throw new ConfigError(`credentials file ${file}, line ${line}: a quote inside an unquoted field (quote the whole field and write "" for the quote)`)
      quoted = true
      fieldStarted = true
      i++
      continue
    }
    if (c === ',') { fields.push(field); field = ''; fieldStarted = true; i++; continue }
    if (c === '\r' || c === '\n') {
      endRecord()
      i += c === '\r' && text[i + 1] === '\n' ? 2 : 1
      line++
      recordLine = line
      continue
    }
    field += c
    fieldStarted = true
    i++
  }
  if (quoted) throw new ConfigError(`credentials file ${file}, line ${recordLine}: a quoted field is not closed`)
  if (field !== '' || fields.length > 0 || fieldStarted) endRecord()
  return records
}

/** Builds the profile-to-credential table from CSV text; errors name the file and line, never a value. */
export function parseCredentials (text: string, file: string): Map<string, Credential> {
  const records = parseCsv(text, file)
  const header = records[0]
  const names = header?.fields.map((f) => f.trim().toLowerCase()) ?? []
  const col = (name: string): number => names.indexOf(name)
  const [p, u, pw] = [col('profile'), col('username'), col('password')]
  if (header === undefined || p === -1 || u === -1 || pw === -1) {
    throw new ConfigError(`credentials file ${file}, line ${header?.line ?? 1}: the first row must be the header "profile,username,password"`)
  }
  const table = new Map<string, Credential>()
  for (const r of records.slice(1)) {
    if (r.fields.length !== names.length) {
      throw new ConfigError(`credentials file ${file}, line ${r.line}: ${r.fields.length} fields, the header has ${names.length}`)
    }
    const profile = r.fields[p]!.trim()
    if (profile === '') throw new ConfigError(`credentials file ${file}, line ${r.line}: the profile is empty`)
    if (table.has(profile)) throw new ConfigError(`credentials file ${file}, line ${r.line}: a second row for profile "${profile}"`)
    table.set(profile, { username: r.fields[u]!, password: r.fields[pw]! })
  }
  return table
}

function sameFile (a: Stats, b: Stats): boolean {
  return a.size === b.size && a.mtimeMs === b.mtimeMs && a.ino === b.ino && a.dev === b.dev
}

/** One credentials file: parsed at start, parsed again when it changed. */
export class CredentialsFile {
  readonly path: string
  private table: Map<string, Credential>
  private stat: Stats
  /** Why the latest re-read failed (the file changed into something unusable), or null. */
  lastError: Error | null = null

  constructor (path: string) {
    this.path = path
    const { table, stat } = this.read()
    this.table = table
    this.stat = stat
  }

  private read (): { table: Map<string, Credential>, stat: Stats } {
    let stat: Stats
    let text: string
    try {
      stat = statSync(this.path)
      if (!stat.isFile()) throw new Error('not a regular file')
      if (stat.size > MAX_CREDENTIALS_BYTES) throw new Error(`larger than ${MAX_CREDENTIALS_BYTES} bytes`)
      text = readFileSync(this.path, 'utf8')
    } catch (err) {
      throw new ConfigError(`cannot read credentials file ${this.path}: ${(err as Error).message}`)
    }
    return { table: parseCredentials(text, this.path), stat }
  }

  /** Re-reads the file if it changed since the last read. Throws (ConfigError) when it changed into something unusable. */
  refresh (): void {
    let now: Stats | null = null
    try { now = statSync(this.path) } catch {}
    if (now !== null && this.lastError === null && sameFile(now, this.stat)) return
    try {
      const { table, stat } = this.read()
      this.table = table
      this.stat = stat
      this.lastError = null
    } catch (err) {
      this.lastError = err as Error
      throw err
    }
  }

  /** Whether `profile` has a row (as last read; no file access). */
  has (profile: string): boolean {
    return this.table.has(profile)
  }

  get size (): number {
    return this.table.size
  }

  /** The row of `profile`, re-reading a changed file first. */
  lookup (profile: string): Credential {
    this.refresh()
    const row = this.table.get(profile)
    if (row === undefined) throw new CredentialsMissingError(profile, this.path)
    return row
  }
}

/** One CredentialsFile per resolved path (the config names a few; the map is bounded by it). */
const files = new Map<string, CredentialsFile>()

/** The shared table of `config.file`; a config error at first use when the file is unusable. */
export function credentialsFile (config: CredentialsConfig, where: string): CredentialsFile {
  const path = resolve(config.file)
  let f = files.get(path)
  if (f === undefined) {
    try {
      f = new CredentialsFile(path)
    } catch (err) {
      throw new ConfigError(`${where}: ${(err as Error).message}`)
    }
    files.set(path, f)
  }
  return f
}
