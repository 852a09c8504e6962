/** `session-proxy login PROFILE`: runs the profile's login flows in the running proxy now. */
import { parseArgs } from 'node:util'
import { ConfigError } from '../errors.js'
import { adminCall, adminTarget, type AdminTarget } from './admin-address.js'

export const LOGIN_HELP = `Usage: session-proxy login PROFILE [options]

Runs PROFILE's configured login flows (profiles.PROFILE.autopilot[].login) in
the running proxy now, instead of waiting for a logged-out answer.

Options:
  --upstream HOST[:PORT]  only the login for this upstream host
  --host HOST             the proxy's address [SESSION_PROXY_HOST] (default from the config)
  --port PORT             the proxy's port [SESSION_PROXY_PORT] (default from the config)
  --config FILE           config file to read host, port and admin.token from [SESSION_PROXY_CONFIG]
  -h, --help              this help
`

interface Out { write: (s: string) => void }

/** Returns the exit code. */
export async function runLoginCommand (argv: string[], out: Out = process.stdout, err: Out = process.stderr): Promise<number> {
  let values: { upstream?: string, host?: string, port?: string, config?: string, help?: boolean }
  let positionals: string[]
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      options: { upstream: { type: 'string' }, host: { type: 'string' }, port: { type: 'string' }, config: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: true
    }))
  } catch (e) {
    err.write(`session-proxy login: ${(e as Error).message}\n\n${LOGIN_HELP}`)
    return 2
  }
  if (values.help === true) { out.write(LOGIN_HELP); return 0 }
  if (positionals.length !== 1) { err.write(`session-proxy login: give exactly one PROFILE\n\n${LOGIN_HELP}`); return 2 }
  let target: AdminTarget
  try {
    target = adminTarget(values)
  } catch (e) {
    if (e instanceof ConfigError) { err.write(`session-proxy login: ${e.message}\n`); return 2 }
    throw e
  }
  const query = values.upstream !== undefined ? `?host=${encodeURIComponent(values.upstream)}` : ''
  try {
    const r = await adminCall(target, 'POST', `/_session/profiles/${encodeURIComponent(positionals[0]!)}/login${query}`) as { profile: string, logins: Array<{ host: string, flow: string, durationMs: number }> }
    for (const l of r.logins) out.write(`${r.profile}: logged in to ${l.host} (${l.flow}, ${l.durationMs} ms)\n`)
    return 0
  } catch (e) {
    err.write(`session-proxy login: ${(e as Error).message}\n`)
    return 1
  }
}
