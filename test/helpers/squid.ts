/**
 * A real squid (Debian package `squid`) as the upstream proxy: a minimal
 * config on a free loopback port, no cache, foreground (`squid -N`).
 */
import { spawn, spawnSync } from 'node:child_process'
import { chmodSync, readFileSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import { freePort, tempDir } from './proxy.js'

export interface Squid {
  port: number
  url: string
  dir: string
  /** squid's access log so far (one line per request). */
  accessLog: () => string
  stop: () => Promise<void>
}

export function hasSquid (): boolean {
  return spawnSync('sh', ['-c', 'command -v squid'], { encoding: 'utf8' }).status === 0
}

async function waitForPort (port: number, deadline: number): Promise<boolean> {
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = net.connect({ host: '127.0.0.1', port }, () => { c.destroy(); resolve(true) })
      c.once('error', () => resolve(false))
    })
    if (ok) return true
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return false
}

export async function startSquid (): Promise<Squid> {
  const dir = tempDir('sp-squid-')
  // squid started as root drops to its own user, which must write its logs here.
  chmodSync(dir, 0o777)
  const port = await freePort()
  const accessLog = join(dir, 'access.log')
  writeFileSync(accessLog, '')
  chmodSync(accessLog, 0o666)
  const conf = join(dir, 'squid.conf')
  writeFileSync(conf, [
    `http_port 127.0.0.1:${port}`,
    'http_access allow localhost',
    'http_access deny all',
    'cache deny all',
    `access_log stdio:${accessLog}`,
    `cache_log ${join(dir, 'cache.log')}`,
    `pid_filename ${join(dir, 'squid.pid')}`,
    `coredump_dir ${dir}`,
    'shutdown_lifetime 0 seconds',
    'forwarded_for delete',
    ''
  ].join('\n'))
  const proc = spawn('squid', ['-N', '-f', conf], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  proc.stderr.on('data', (c: Buffer) => { stderr += c.toString('utf8') })
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
  if (!await waitForPort(port, Date.now() + 20_000)) {
    proc.kill('SIGKILL')
    let log = ''
    try { log = readFileSync(join(dir, 'cache.log'), 'utf8') } catch {}
    throw new Error(`squid did not listen on ${port}: ${stderr}\n${log}`)
  }
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    dir,
    accessLog: () => readFileSync(accessLog, 'utf8'),
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM')
      await exited
    }
  }
}
