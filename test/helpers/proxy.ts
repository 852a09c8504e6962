/**
 * Starts the real session-proxy process (dist/cli.js) on a free loopback port
 * and talks to it with real clients.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { GUARD_MESSAGE } from '../../src/process-guard.js'

export const ROOT = fileURLToPath(new URL('../..', import.meta.url))
export const CLI = join(ROOT, 'dist', 'cli.js')

export interface ProxyProcess {
  url: string
  port: number
  dataDir: string
  proc: ChildProcess
  /** Every stdout/stderr line so far. */
  output: string[]
  stop: () => Promise<number | null>
  kill9: () => Promise<void>
}

export interface StartOptions {
  args?: string[]
  /** Written to a temp file and passed with --config. */
  config?: Record<string, unknown>
  env?: NodeJS.ProcessEnv
  dataDir?: string
  /** null: pass no --log-level flag. */
  logLevel?: string | null
  /** The test provokes the process guard itself: stop() does not fail on it. */
  allowGuard?: boolean
  /** Wraps the command (e.g. ['prlimit', '--nofile=256:256', '--']); the proxy's pid is then the wrapper's. */
  wrap?: string[]
}

/**
 * Throws when the proxy's process guard caught an uncaught error: the guard
 * keeps the proxy serving, so without this a crash bug would pass unnoticed.
 */
export function assertNoGuard (proxy: Pick<ProxyProcess, 'output'>): void {
  const hit = proxy.output.find((line) => line.includes(GUARD_MESSAGE))
  if (hit !== undefined) throw new Error(`the proxy's process guard caught an uncaught error (a bug):\n${hit}`)
}

/** A port that was free on 127.0.0.1 a moment ago (for servers that must be told their port). */
export async function freePort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port
      s.close(() => resolve(port))
    })
  })
}

export function tempDir (prefix = 'sp-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix))
}

export async function startProxy (opts: StartOptions = {}): Promise<ProxyProcess> {
  const dataDir = opts.dataDir ?? tempDir()
  const args = [CLI, '--host', '127.0.0.1', '--port', '0', '--data-dir', dataDir, ...(opts.logLevel === null ? [] : ['--log-level', opts.logLevel ?? 'info']), ...(opts.args ?? [])]
  if (opts.config !== undefined) {
    const file = join(tempDir('sp-config-'), 'config.json')
    writeFileSync(file, JSON.stringify(opts.config))
    args.push('--config', file)
  }
  const cmd = opts.wrap === undefined ? process.execPath : opts.wrap[0]!
  const cmdArgs = opts.wrap === undefined ? args : [...opts.wrap.slice(1), process.execPath, ...args]
  const proc = spawn(cmd, cmdArgs, { env: { ...process.env, ...opts.env }, stdio: ['ignore', 'pipe', 'pipe'] })
  const output: string[] = []
  const url = await new Promise<string>((resolve, reject) => {
    let buf = ''
    const onData = (chunk: Buffer): void => {
      buf += chunk.toString('utf8')
      let nl
      while ((nl = buf.indexOf('\n')) !== -1) {
        const line = buf.slice(0, nl)
        buf = buf.slice(nl + 1)
        output.push(line)
        if (line.includes('"msg":"listening"')) resolve((JSON.parse(line) as { url: string }).url)
      }
    }
    proc.stdout!.on('data', onData)
    proc.stderr!.on('data', (c: Buffer) => output.push(...c.toString('utf8').split('\n').filter(Boolean)))
    proc.once('exit', (code) => reject(new Error(`proxy exited with ${code} before listening:\n${output.join('\n')}`)))
    setTimeout(() => reject(new Error(`proxy did not start in 15 s:\n${output.join('\n')}`)), 15_000).unref()
  })
  const port = Number(new URL(url).port)
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)))
  return {
    url,
    port,
    dataDir,
    proc,
    output,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM')
      const code = await exited
      if (opts.allowGuard !== true) assertNoGuard({ output })
      return code
    },
    kill9: async () => {
      proc.kill('SIGKILL')
      await exited
    }
  }
}

/** Runs the CLI to completion (for start-up failures, --help, ...). */
export function runCli (args: string[], env: NodeJS.ProcessEnv = {}): { status: number | null, stdout: string, stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, encoding: 'utf8', timeout: 15_000 })
  return { status: r.status, stdout: r.stdout, stderr: r.stderr }
}

export interface CurlResult {
  status: number
  stdout: string
  stderr: string
  exitCode: number | null
}

/** Runs a command without blocking this process (test upstreams live in it). */
export async function run (cmd: string, args: string[], opts: { input?: string | Buffer, env?: NodeJS.ProcessEnv, timeoutMs?: number } = {}): Promise<{ stdout: Buffer, stderr: string, code: number | null }> {
  return await new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: { ...process.env, ...opts.env }, stdio: ['pipe', 'pipe', 'pipe'] })
    const out: Buffer[] = []
    let err = ''
    child.stdout.on('data', (c: Buffer) => out.push(c))
    child.stderr.on('data', (c: Buffer) => { err += c.toString('utf8') })
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000)
    child.once('error', reject)
    child.once('close', (code) => { clearTimeout(timer); resolve({ stdout: Buffer.concat(out), stderr: err, code }) })
    child.stdin.end(opts.input)
  })
}

/** curl with `-s -w '\n%{http_code}'`; status is the last line. */
export async function curl (args: string[], input?: string): Promise<CurlResult> {
  const r = await run('curl', ['-s', '-S', '--max-time', '20', '-w', '\n%{http_code}', ...args], { input })
  const out = r.stdout.toString('utf8')
  const nl = out.lastIndexOf('\n')
  return { status: Number(out.slice(nl + 1)), stdout: out.slice(0, nl), stderr: r.stderr, exitCode: r.code }
}

export interface Upstream {
  port: number
  origin: string
  server: http.Server
  /** Requests seen, newest last. */
  requests: Array<{ method: string, url: string, headers: http.IncomingHttpHeaders, rawHeaders: string[] }>
  close: () => Promise<void>
}

export type UpstreamHandler = (req: http.IncomingMessage, res: http.ServerResponse) => void

/** A real HTTP server on a free loopback port. */
export async function startUpstream (handler: UpstreamHandler): Promise<Upstream> {
  return await serveUpstream((record) => http.createServer(record), handler, (port) => `http://127.0.0.1:${port}`)
}

/**
 * Listens on a free loopback port with `create`'s server (http or https),
 * recording every request before `handler` answers it.
 */
export async function serveUpstream (create: (listener: http.RequestListener) => http.Server, handler: UpstreamHandler, originOf: (port: number) => string): Promise<Upstream> {
  const requests: Upstream['requests'] = []
  const server = create((req, res) => {
    requests.push({ method: req.method!, url: req.url!, headers: req.headers, rawHeaders: req.rawHeaders })
    handler(req, res)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as { port: number }).port
  return {
    port,
    origin: originOf(port),
    server,
    requests,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

/** An upstream that answers with the Cookie header it received, and sets cookies from ?set=... */
export function echoCookies (): UpstreamHandler {
  return (req, res) => {
    const u = new URL(req.url!, 'http://x')
    const headers: Array<[string, string]> = [['content-type', 'application/json']]
    for (const c of u.searchParams.getAll('set')) headers.push(['set-cookie', c])
    res.writeHead(200, headers.flat())
    res.end(JSON.stringify({ cookie: req.headers.cookie ?? null, path: u.pathname }))
  }
}

/** Sends one request through the proxy with Node's http client (absolute-form). */
export async function viaProxy (proxyPort: number, url: string, opts: { method?: string, headers?: Record<string, string | string[]>, body?: string | Buffer } = {}): Promise<{ status: number, headers: http.IncomingHttpHeaders, rawHeaders: string[], body: string }> {
  return await new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: proxyPort, method: opts.method ?? 'GET', path: url, headers: { host: new URL(url).host, ...opts.headers }, agent: false }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks).toString('utf8') }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(opts.body)
  })
}

export async function adminGet (proxy: ProxyProcess, path: string): Promise<{ status: number, json: unknown, body: string }> {
  const r = await fetch(`${proxy.url}${path}`)
  const body = await r.text()
  let json: unknown = null
  try { json = JSON.parse(body) } catch {}
  return { status: r.status, json, body }
}

export function cleanup (...dirs: string[]): void {
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
}
