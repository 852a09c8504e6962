/**
 * `session-proxy export [--out FILE]`: every profile of the configured store
 * (files or Redis) as one JSON document (store/transfer.ts), for `import`
 * into another store or on another machine.
 */
import { renameSync, writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { ConfigError } from '../errors.js'
import { exportDocument, readProfiles } from '../session/store/transfer.js'
import { commandLogger, STORE_OPTIONS_HELP, STORE_PARSE_OPTIONS, storeConfig } from './store-command.js'

export const EXPORT_HELP = `Usage: session-proxy export [--out FILE] [store options]

Writes every profile's cookies (every attribute, in creation order) as JSON to
FILE, or to stdout. Read it back with session-proxy import FILE.

  --out FILE              where to write (default: stdout); written whole, then renamed
${STORE_OPTIONS_HELP}`

interface Out { write: (s: string) => void }

export async function runExportCommand (argv: string[], out: Out = process.stdout, err: Out = process.stderr): Promise<number> {
  let values: { out?: string, store?: string, 'data-dir'?: string, config?: string, help?: boolean }
  try {
    ({ values } = parseArgs({ args: argv, options: { out: { type: 'string' }, ...STORE_PARSE_OPTIONS }, strict: true, allowPositionals: false }))
  } catch (e) {
    err.write(`session-proxy export: ${(e as Error).message}\n\n${EXPORT_HELP}`)
    return 2
  }
  if (values.help === true) { out.write(EXPORT_HELP); return 0 }
  try {
    const config = storeConfig(values)
    const profiles = await readProfiles(config, commandLogger())
    const text = JSON.stringify(exportDocument(profiles), null, 2) + '\n'
    if (values.out === undefined || values.out === '-') {
      out.write(text)
    } else {
      const tmp = `${values.out}.tmp-${process.pid}`
      writeFileSync(tmp, text, { mode: 0o600 })
      renameSync(tmp, values.out)
      let cookies = 0
      for (const c of profiles.values()) cookies += c.length
      err.write(`exported ${profiles.size} profiles (${cookies} cookies) to ${values.out}\n`)
    }
    return 0
  } catch (e) {
    err.write(`session-proxy export: ${(e as Error).message}\n`)
    return e instanceof ConfigError ? 2 : 1
  }
}
