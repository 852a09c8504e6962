/**
 * `session-proxy import FILE`: puts the profiles of an export into the
 * configured store, replacing those of the same names. The whole file is
 * checked first: one bad cookie and nothing is written.
 */
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { ConfigError } from '../errors.js'
import { parseExport, writeProfiles } from '../session/store/transfer.js'
import { commandLogger, STORE_OPTIONS_HELP, STORE_PARSE_OPTIONS, storeConfig } from './store-command.js'

export const IMPORT_HELP = `Usage: session-proxy import FILE [store options]

Reads an export (session-proxy export; "-" reads stdin) and replaces the
profiles it names in the store; other profiles stay. Nothing is written
unless the whole file is valid. Into Redis, running proxies take the
cookies at once; into files, stop the proxy that uses the data directory.

${STORE_OPTIONS_HELP}`

interface Out { write: (s: string) => void }

export async function runImportCommand (argv: string[], out: Out = process.stdout, err: Out = process.stderr): Promise<number> {
  let values: { store?: string, 'data-dir'?: string, config?: string, help?: boolean }
  let positionals: string[]
  try {
    ({ values, positionals } = parseArgs({ args: argv, options: STORE_PARSE_OPTIONS, strict: true, allowPositionals: true }))
  } catch (e) {
    err.write(`session-proxy import: ${(e as Error).message}\n\n${IMPORT_HELP}`)
    return 2
  }
  if (values.help === true) { out.write(IMPORT_HELP); return 0 }
  if (positionals.length !== 1) { err.write(`session-proxy import: give exactly one FILE\n\n${IMPORT_HELP}`); return 2 }
  const file = positionals[0]!
  let profiles
  try {
    profiles = parseExport(readFileSync(file === '-' ? 0 : file, 'utf8'))
  } catch (e) {
    err.write(`session-proxy import: ${file}: ${(e as Error).message} (nothing was imported)\n`)
    return 2
  }
  try {
    const config = storeConfig(values)
    await writeProfiles(config, commandLogger(), profiles)
  } catch (e) {
    err.write(`session-proxy import: ${(e as Error).message}\n`)
    return e instanceof ConfigError ? 2 : 1
  }
  let cookies = 0
  for (const c of profiles.values()) cookies += c.length
  out.write(`imported ${profiles.size} profiles (${cookies} cookies)\n`)
  return 0
}
