/**
 * A real second HTTP proxy for upstream-proxy tests: tinyproxy (Debian
 * package `tinyproxy`) in the foreground on a free loopback port, with Basic
 * proxy auth and a log the test can read to see what went through it.
 */
import { spawn, spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import { freePort, tempDir } from './proxy.js'

export interface TinyProxy {
  port: number
  url: string
  /** Everything tinyproxy logged so far (one line per event: Request lines name each request). */
  log: () => string
  dir: string
  stop: () => Promise<void>
}

export function hasTinyproxy (): boolean {
  return spawnSync('sh', ['-c', 'command -v tinyproxy'], { encoding: 'utf8' }).status === 0
}

async function waitForPort (port: number, deadline: number): Promise<void> {
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const c = net.connect({ host: '127.0.0.1', port }, () => { c.destroy(); resolve(true) })
      c.once('error', () => resolve(false))
    })
    if (ok) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`tinyproxy did not listen on ${port}`)
}

export async function startTinyproxy (auth: { user: string, password: string }): Promise<TinyProxy> {
  const dir = tempDir('sp-tinyproxy-')
  const port = await freePort()
  const logFile = join(dir, 'tinyproxy.log')
  writeFileSync(logFile, '')
  const conf = join(dir, 'tinyproxy.conf')
  // No ConnectPort line: CONNECT is allowed to every port (the tests' upstreams use random ones).
  writeFileSync(conf, [
    `Port ${port}`,
    'Listen 127.0.0.1',
    'Timeout 30',
    'MaxClients 50',
    'LogLevel Connect',
    `LogFile "${logFile}"`,
    `BasicAuth ${auth.user} ${auth.password}`,
    'Allow 127.0.0.1',
    ''
  ].join('\n'))
  const proc = spawn('tinyproxy', ['-d', '-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  proc.stderr.on('data', (c: Buffer) => { stderr += c.toString('utf8') })
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()))
  try {
    await waitForPort(port, Date.now() + 10_000)
  } catch (err) {
    proc.kill('SIGKILL')
    throw new Error(`${(err as Error).message}: ${stderr}`)
  }
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    dir,
    log: () => readFileSync(logFile, 'utf8'),
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM')
      await exited
    }
  }
}
