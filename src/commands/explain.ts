/**
 * `session-proxy explain URL`: asks the running proxy's admin API which
 * cookies of a profile it would send to URL, and why not the others, and
 * prints that as a table. The proxy's address is found like the server finds
 * it: --host/--port, SESSION_PROXY_* variables, the config file, defaults.
 */
import { parseArgs } from 'node:util'
import { adminTarget, type AdminTarget } from './admin-address.js'
import { ConfigError } from '../errors.js'
import type { ExplainResult, ExplainRule } from '../observe/explain.js'

export const EXPLAIN_HELP = `Usage: session-proxy explain URL [options]

Shows which cookies of a profile the running proxy would send to URL, and for
each one it would not, why (domain, host-only, path, Secure over http,
expired, SameSite); and which default headers, auth and CSRF rules apply.

Options:
  --profile NAME     the profile (default "default")
  --method METHOD    the request method (default GET)
  --site CONTEXT     same-site (default: what the proxy does), cross-site-navigation
                     or cross-site (what a browser would send)
  --json             print the admin API's JSON instead of a table
  --host HOST        the proxy's address [SESSION_PROXY_HOST] (default from the config)
  --port PORT        the proxy's port [SESSION_PROXY_PORT] (default from the config)
  --config FILE      config file to read host, port and admin.token from [SESSION_PROXY_CONFIG]
  -h, --help         this help
`

interface Out { write: (s: string) => void }

function pad (s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length)
}

function rules (title: string, list: readonly ExplainRule[]): string[] {
  if (list.length === 0) return [`${title}: none`]
  return [`${title}:`, ...list.map((r) => `  ${r.applies ? '' : '(not applied) '}${r.name}: ${r.value}   (${r.rule}, match ${r.match}${r.note !== undefined ? `, ${r.note}` : ''})`)]
}

export function formatExplain (r: ExplainResult): string {
  const lines: string[] = [`Profile ${r.profile} · ${r.method} ${r.url} · ${r.site}`, '']
  if (r.cookies.length === 0) {
    lines.push('The profile has no cookies.')
  } else {
    const rows = r.cookies.map((c) => [c.name, c.domain + c.path, c.sent ? 'yes' : 'no', c.reasons.map((x) => `${x.code}: ${x.message}`).join('; ')])
    const head = ['COOKIE', 'DOMAIN+PATH', 'SENT', 'WHY NOT']
    const w = [0, 1, 2].map((i) => Math.min(40, Math.max(head[i]!.length, ...rows.map((row) => row[i]!.length))))
    lines.push(head.map((h, i) => i < 3 ? pad(h, w[i]!) : h).join('  ').trimEnd())
    for (const row of rows) lines.push(row.map((v, i) => i < 3 ? pad(v, w[i]!) : v).join('  ').trimEnd())
  }
  lines.push('', `Cookie header: ${r.cookieHeader === '' ? '(none)' : r.cookieHeader}`, '')
  lines.push(...rules('Default headers', r.headers), ...rules('Auth', r.auth), ...rules('CSRF', r.csrf), '')
  lines.push(...r.notes.map((n) => `Note: ${n}`))
  return lines.join('\n') + '\n'
}

/** Returns the exit code. */
export async function runExplain (argv: string[], out: Out = process.stdout, err: Out = process.stderr): Promise<number> {
  let values: { profile?: string, method?: string, site?: string, json?: boolean, host?: string, port?: string, config?: string, help?: boolean }
  let positionals: string[]
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      options: {
        profile: { type: 'string' },
        method: { type: 'string' },
        site: { type: 'string' },
        json: { type: 'boolean' },
        host: { type: 'string' },
        port: { type: 'string' },
        config: { type: 'string' },
        help: { type: 'boolean', short: 'h' }
      },
      strict: true,
      allowPositionals: true
    }))
  } catch (e) {
    err.write(`session-proxy explain: ${(e as Error).message}\n\n${EXPLAIN_HELP}`)
    return 2
  }
  if (values.help === true) { out.write(EXPLAIN_HELP); return 0 }
  if (positionals.length !== 1) {
    err.write(`session-proxy explain: give exactly one URL\n\n${EXPLAIN_HELP}`)
    return 2
  }
  let target: AdminTarget
  try {
    target = adminTarget(values)
  } catch (e) {
    if (e instanceof ConfigError) { err.write(`session-proxy explain: ${e.message}\n`); return 2 }
    throw e
  }
  const profile = values.profile ?? 'default'
  const q = new URLSearchParams({ url: positionals[0]!, method: values.method ?? 'GET', site: values.site ?? 'same-site' })
  const { base, headers } = target
  let response: Response
  try {
    response = await fetch(`${base}/_session/profiles/${encodeURIComponent(profile)}/explain?${q.toString()}`, { headers, signal: AbortSignal.timeout(10_000) })
  } catch (e) {
    const cause = (e as { cause?: { code?: string, message?: string } }).cause
    err.write(`session-proxy explain: cannot reach the proxy at ${base}: ${cause?.code ?? cause?.message ?? (e as Error).message}. Is it running? Give its address with --host/--port.\n`)
    return 1
  }
  const text = await response.text()
  if (!response.ok) {
    let message = text.trim()
    try { message = (JSON.parse(text) as { message: string }).message } catch {}
    err.write(`session-proxy explain: ${message}\n`)
    return 1
  }
  if (values.json === true) { out.write(text.endsWith('\n') ? text : text + '\n'); return 0 }
  out.write(formatExplain(JSON.parse(text) as ExplainResult))
  return 0
}
