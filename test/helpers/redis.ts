/**
 * A real redis-server (Debian package `redis-server`) on a free loopback
 * port, in a temp directory: no RDB snapshots; the append-only file on
 * request (for restart tests that must keep the data). Stopped by pid.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { freePort, tempDir } from './proxy.js'

export { freePort }

export const REDIS_SERVER = '/usr/bin/redis-server'

export function hasRedis (): boolean {
  return spawnSync(REDIS_SERVER, ['--version'], { encoding: 'utf8' }).status === 0
}

export interface RedisServer {
  port: number
  url: string
  dir: string
  /** Stops it (SIGTERM, then SIGKILL). */
  stop: () => Promise<void>
  /** Starts it again on the same port and directory (after stop). */
  restart: () => Promise<void>
  /** Runs redis-cli against it. */
  cli: (...args: string[]) => string
}

async function waitForPing (port: number, deadline: number): Promise<void> {
  while (Date.now() < deadline) {
    const r = spawnSync('redis-cli', ['-p', String(port), 'ping'], { encoding: 'utf8' })
    if (r.stdout.trim() === 'PONG') return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`redis-server on port ${port} did not answer PING`)
}

export async function startRedis (opts: { appendOnly?: boolean, port?: number } = {}): Promise<RedisServer> {
  const dir = tempDir('sp-redis-')
  const port = opts.port ?? await freePort()
  let proc: ChildProcess | null = null
  const launch = async (): Promise<void> => {
    const p = spawn(REDIS_SERVER, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', opts.appendOnly === true ? 'yes' : 'no', '--appendfsync', 'always', '--dir', dir, '--daemonize', 'no', '--loglevel', 'warning'], { stdio: 'ignore' })
    proc = p
    await waitForPing(port, Date.now() + 10_000)
  }
  const stop = async (): Promise<void> => {
    const p = proc
    if (p === null || p.exitCode !== null || p.signalCode !== null) return
    const exited = new Promise<void>((resolve) => p.once('exit', () => resolve()))
    p.kill('SIGTERM')
    const timer = setTimeout(() => p.kill('SIGKILL'), 5000)
    await exited
    clearTimeout(timer)
    proc = null
  }
  await launch()
  return {
    port,
    url: `redis://127.0.0.1:${port}/0`,
    dir,
    stop,
    restart: async () => { await stop(); await launch() },
    cli: (...args: string[]) => spawnSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' }).stdout
  }
}
