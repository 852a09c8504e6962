/**
 * `session-proxy --help` names every flag's environment variable (from the
 * mapping generated from the schema) and points to docs/environment.md;
 * logFormat chooses JSON or pretty lines whatever stdout is.
 */
import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { ENV_VARIABLES } from '../src/config/load.js'

const CLI = join(import.meta.dirname, '..', 'dist', 'cli.js')

t.test('--help names the variable of every flag that has one, and docs/environment.md', async (t) => {
  const help = spawnSync(process.execPath, [CLI, '--help'], { encoding: 'utf8' }).stdout
  const flagKeys = ['host', 'port', 'dataDir', 'logLevel', 'logFormat', 'connectTo', 'reverse', 'reverseForward', 'upstream.proxy', 'upstream.ca', 'connect.allowedPorts', 'profiles', 'connect.exclude', 'connect.intercept', 'allowClients']
  for (const key of flagKeys) {
    const v = ENV_VARIABLES.find((e) => e.key.join('.') === key)
    t.ok(v, `${key} has a variable`)
    t.ok(help.includes(`[${v!.name}]`), `--help names ${v!.name} for ${key}`)
  }
  t.match(help, /docs\/environment\.md/)
})

/** Starts the proxy, returns its first output line that names "listening", then stops it. */
async function firstLines (t: Test, command: string, args: string[], env: Record<string, string>): Promise<string> {
  const dataDir = mkdtempSync(join(tmpdir(), 'sp-logformat-'))
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }))
  const proc = spawn(command, args.map((a) => a.replace('DATA', dataDir)), { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  proc.stdout.on('data', (d: Buffer) => { out += d.toString() })
  const exited = new Promise((resolve) => proc.once('exit', resolve))
  const end = Date.now() + 15_000
  while (!out.includes('listening') && Date.now() < end) await new Promise((resolve) => setTimeout(resolve, 50))
  proc.kill('SIGTERM')
  await exited
  return out.split(/\r?\n/).find((l) => l.includes('listening')) ?? ''
}

t.test('logFormat json gives JSON lines on a terminal (docker run -t)', async (t) => {
  const cmd = `${process.execPath} ${CLI} --host 127.0.0.1 --port 0 --data-dir DATA`
  const line = await firstLines(t, 'script', ['-qfec', cmd, '/dev/null'], { SESSION_PROXY_LOG_FORMAT: 'json' })
  t.match(JSON.parse(line), { msg: 'listening' }, 'a JSON line although stdout is a terminal')
})

t.test('logFormat pretty pretty-prints without a terminal; auto gives JSON there', async (t) => {
  const args = [CLI, '--host', '127.0.0.1', '--port', '0', '--data-dir', 'DATA']
  const pretty = await firstLines(t, process.execPath, args, { SESSION_PROXY_LOG_FORMAT: 'pretty' })
  t.match(pretty, /listening/)
  t.throws(() => JSON.parse(pretty), 'not JSON')
  const auto = await firstLines(t, process.execPath, args, {})
  t.match(JSON.parse(auto), { msg: 'listening' })
})
