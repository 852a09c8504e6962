/**
 * `session-proxy cookies PROFILE`: looks at or edits a profile's jar in the
 * running proxy through the admin API (like `login`).
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { parseArgs } from 'node:util'
import { ConfigError } from '../errors.js'
import { adminCall, adminCallText, adminTarget, type AdminTarget } from './admin-address.js'

export const COOKIES_HELP = `Usage: session-proxy cookies PROFILE [action] [options]

Without an action, lists PROFILE's cookies as a table.

Actions (one at a time):
  --set NAME=VALUE --domain D [--path P]
                          add or replace one cookie (PUT /_session/profiles/P/cookies/NAME)
      [--secure] [--http-only] [--expires ISO-DATE]
  --delete NAME [--domain D] [--path P]
                          delete the cookies of that name
  --import FILE           replace the jar with FILE: a cookies.txt (Netscape) file, or a
                          session.json (from --export FILE.json or GET .../session.json)
  --export FILE           write the jar to FILE: session.json when FILE ends in .json,
                          else cookies.txt; "-" writes cookies.txt to stdout

Where the proxy is:
  --host HOST             the proxy's address [SESSION_PROXY_HOST] (default from the config)
  --port PORT             the proxy's port [SESSION_PROXY_PORT] (default from the config)
  --config FILE           config file to read host, port and admin.token from [SESSION_PROXY_CONFIG]
  -h, --help              this help
`

interface Out { write: (s: string) => void }

interface CookieRow { name: string, value: string, domain: string, path: string, expires: string | null, secure: boolean, httpOnly: boolean, sameSite: string | null, hostOnly: boolean }

const MAX_VALUE_SHOWN = 40

/** The jar as an aligned text table, long values shortened. */
export function cookieTable (cookies: readonly CookieRow[]): string {
  if (cookies.length === 0) return '(no cookies)\n'
  const rows = [['NAME', 'VALUE', 'DOMAIN', 'PATH', 'EXPIRES', 'FLAGS']]
  for (const c of cookies) {
    const flags = [c.secure ? 'Secure' : '', c.httpOnly ? 'HttpOnly' : '', c.sameSite !== null ? `SameSite=${c.sameSite}` : '', c.hostOnly ? '' : 'subdomains'].filter(Boolean).join(',')
    const value = c.value.length > MAX_VALUE_SHOWN ? c.value.slice(0, MAX_VALUE_SHOWN - 1) + '…' : c.value
    rows.push([c.name, value, c.domain, c.path, c.expires ?? 'session', flags])
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
  return rows.map((r) => r.map((cell, i) => i === r.length - 1 ? cell : cell.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n') + '\n'
}

type Values = { set?: string, delete?: string, import?: string, export?: string, domain?: string, path?: string, expires?: string, secure?: boolean, 'http-only'?: boolean, host?: string, port?: string, config?: string, help?: boolean }

/** Returns the exit code. */
export async function runCookiesCommand (argv: string[], out: Out = process.stdout, err: Out = process.stderr): Promise<number> {
  let values: Values
  let positionals: string[]
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      options: {
        set: { type: 'string' },
        delete: { type: 'string' },
        import: { type: 'string' },
        export: { type: 'string' },
        domain: { type: 'string' },
        path: { type: 'string' },
        expires: { type: 'string' },
        secure: { type: 'boolean' },
        'http-only': { type: 'boolean' },
        host: { type: 'string' },
        port: { type: 'string' },
        config: { type: 'string' },
        help: { type: 'boolean', short: 'h' }
      },
      strict: true,
      allowPositionals: true
    }))
  } catch (e) {
    err.write(`session-proxy cookies: ${(e as Error).message}\n\n${COOKIES_HELP}`)
    return 2
  }
  if (values.help === true) { out.write(COOKIES_HELP); return 0 }
  const usage = (message: string): number => { err.write(`session-proxy cookies: ${message}\n\n${COOKIES_HELP}`); return 2 }
  if (positionals.length !== 1) return usage('give exactly one PROFILE')
  const actions = (['set', 'delete', 'import', 'export'] as const).filter((a) => values[a] !== undefined)
  if (actions.length > 1) return usage(`one action at a time (got --${actions.join(', --')})`)
  if (values.set !== undefined && (values.set.indexOf('=') <= 0 || values.domain === undefined)) return usage('--set NAME=VALUE needs a NAME, an "=" and --domain D')
  let target: AdminTarget
  try {
    target = adminTarget(values)
  } catch (e) {
    if (e instanceof ConfigError) { err.write(`session-proxy cookies: ${e.message}\n`); return 2 }
    throw e
  }
  const profile = positionals[0]!
  const base = `/_session/profiles/${encodeURIComponent(profile)}`
  try {
    if (values.set !== undefined) {
      const eq = values.set.indexOf('=')
      const name = values.set.slice(0, eq)
      const cookie = await adminCall(target, 'PUT', `${base}/cookies/${encodeURIComponent(name)}`, {
        json: { value: values.set.slice(eq + 1), domain: values.domain, path: values.path, expires: values.expires, secure: values.secure === true, httpOnly: values['http-only'] === true }
      }) as CookieRow
      out.write(cookieTable([cookie]))
    } else if (values.delete !== undefined) {
      const q = new URLSearchParams()
      if (values.domain !== undefined) q.set('domain', values.domain)
      if (values.path !== undefined) q.set('path', values.path)
      const query = q.size === 0 ? '' : `?${q.toString()}`
      const r = await adminCall(target, 'DELETE', `${base}/cookies/${encodeURIComponent(values.delete)}${query}`) as { deleted: number }
      out.write(`${profile}: deleted ${r.deleted} cookie${r.deleted === 1 ? '' : 's'} named ${values.delete}\n`)
      if (r.deleted === 0) return 1
    } else if (values.import !== undefined) {
      const text = readFileSync(values.import, 'utf8')
      const json = looksLikeJson(text)
      const r = await adminCall(target, 'PUT', `${base}/${json ? 'session.json' : 'cookies.txt'}`, json ? { json: JSON.parse(text) as unknown } : { text }) as { imported: number }
      out.write(`${profile}: imported ${r.imported} cookie${r.imported === 1 ? '' : 's'} from ${values.import}\n`)
    } else if (values.export !== undefined) {
      const json = values.export.endsWith('.json')
      const text = await adminCallText(target, 'GET', `${base}/${json ? 'session.json' : 'cookies.txt'}`)
      if (values.export === '-') out.write(text)
      else {
        writeFileSync(values.export, json ? JSON.stringify(JSON.parse(text), null, 2) + '\n' : text, { mode: 0o600 })
        err.write(`${profile}: wrote ${values.export}\n`)
      }
    } else {
      const r = await adminCall(target, 'GET', `${base}/cookies`) as { cookies: CookieRow[] }
      out.write(cookieTable(r.cookies))
    }
    return 0
  } catch (e) {
    err.write(`session-proxy cookies: ${(e as Error).message}\n`)
    return 1
  }
}

function looksLikeJson (text: string): boolean {
  return /^\s*\{/.test(text.charCodeAt(0) === 0xFEFF ? text.slice(1) : text)
}
