/**
 * Shared pieces of the property tests in test/fuzz/: the budget and seed
 * (FUZZ_RUNS, FUZZ_SEED, FUZZ_STRICT), a proxy that is restarted when a
 * generated input killed it (so fast-check can go on shrinking), raw-socket
 * exchanges that end the way a hostile client would (FIN, RST), and a tiny
 * raw upstream that sends exactly the bytes a test gives it and records the
 * exact request bytes it received.
 */
import { appendFileSync } from 'node:fs'
import net from 'node:net'
import type { Test } from 'tap'
import fc from 'fast-check'
import { cleanup, startProxy, tempDir, type ProxyProcess, type StartOptions } from './proxy.js'

/** Runs per property: FUZZ_RUNS, else a default sized to keep all properties under a minute. */
export function fuzzRuns (fallback: number): number {
  const n = Number(process.env.FUZZ_RUNS)
  return Number.isInteger(n) && n > 0 ? n : fallback
}

export const FUZZ_SEED = Number.isInteger(Number(process.env.FUZZ_SEED)) && process.env.FUZZ_SEED !== undefined && process.env.FUZZ_SEED !== '' ? Number(process.env.FUZZ_SEED) : 0x5e551
/** FUZZ_STRICT=0: properties known to fail on main before the issue 9 fixes are reported as todo. */
export const FUZZ_STRICT = process.env.FUZZ_STRICT !== '0'

/** tap options for a property that failed on main before the issue 9 fixes. */
export function knownFailure (what: string): { todo?: string } {
  return FUZZ_STRICT ? {} : { todo: `known failure on main before the issue 9 fixes: ${what} (FUZZ_STRICT=0)` }
}

/**
 * fast-check parameters: the fixed seed, FUZZ_RUNS runs, and in the default
 * (bounded) run a time limit per property so the whole set stays under a minute
 * even when a failure has to be shrunk through proxy restarts.
 */
export function fuzzParams<T> (fallbackRuns: number, timeLimitMs: number): fc.Parameters<T> {
  const bounded = process.env.FUZZ_RUNS === undefined || process.env.FUZZ_RUNS === ''
  return {
    seed: FUZZ_SEED,
    numRuns: fuzzRuns(fallbackRuns),
    endOnFailure: false,
    ...(bounded ? { interruptAfterTimeLimit: timeLimitMs, markInterruptAsFailure: false } : {})
  }
}

/** Log lines that mean an error escaped to the process (exit, or a process-level guard that caught it). */
const ESCAPED = /uncaught|unhandled|"level":60|^\s+at .+\(node:/i

/**
 * One proxy process for a property. `check()` after each input says whether
 * the input killed it or let an error escape; a dead proxy is replaced before
 * the next input so shrinking can continue.
 */
export class ProxyUnderTest {
  proxy!: ProxyProcess
  private seen = 0
  private stopped = false
  private starting: Promise<ProxyProcess> | null = null
  private readonly dataDirs: string[] = []

  constructor (private readonly opts: StartOptions = {}) {}

  async start (): Promise<ProxyProcess> {
    const dataDir = this.opts.dataDir ?? tempDir('sp-fuzz-')
    this.dataDirs.push(dataDir)
    this.proxy = await startProxy({ logLevel: 'warn', ...this.opts, dataDir })
    this.seen = 0
    return this.proxy
  }

  get alive (): boolean {
    return this.proxy.proc.exitCode === null && this.proxy.proc.signalCode === null
  }

  /**
   * Restarts a proxy the previous input killed. After stop() (a run still in
   * flight when fast-check's time limit ended the property) it refuses, so no
   * orphan process outlives the test.
   */
  async ensure (): Promise<ProxyProcess> {
    if (this.stopped) throw new Error('the property has ended')
    if (this.alive) return this.proxy
    this.starting ??= this.start().finally(() => { this.starting = null })
    return await this.starting
  }

  /**
   * Problems since the last check: the process exited, health did not
   * answer 200, or a log line shows an error that escaped to the process.
   */
  async check (): Promise<string[]> {
    const problems: string[] = []
    let health = 0
    // An error from the input's last packets (an RST) is handled on the proxy's next turn.
    await new Promise((resolve) => setTimeout(resolve, 15))
    if (this.alive) {
      try {
        const r = await fetch(`${this.proxy.url}/_session/health`, { signal: AbortSignal.timeout(5000) })
        health = r.status
        await r.arrayBuffer()
      } catch (err) {
        problems.push(`health did not answer: ${(err as Error).message}`)
      }
    }
    // An exit may race the health request: give it a moment to be reported.
    if (health !== 200) await new Promise((resolve) => setTimeout(resolve, 100))
    if (!this.alive) problems.push(`proxy exited (code ${String(this.proxy.proc.exitCode)}, signal ${String(this.proxy.proc.signalCode)})`)
    else if (health !== 200 && problems.length === 0) problems.push(`health answered ${health}`)
    const lines = this.proxy.output.slice(this.seen)
    this.seen = this.proxy.output.length
    const escaped = lines.filter((l) => ESCAPED.test(l))
    if (escaped.length > 0) problems.push(`escaped error: ${escaped.slice(0, 6).join(' | ').slice(0, 1200)}`)
    return problems
  }

  async stop (): Promise<void> {
    this.stopped = true
    if (this.starting !== null) await this.starting.catch(() => {})
    if (this.alive) await this.proxy.stop()
    cleanup(...this.dataDirs)
  }
}

export type Ending = 'fin' | 'rst'

export interface Exchange {
  /** Status codes of every response head seen, in order. */
  statuses: number[]
  data: Buffer
  /** The peer closed or reset the connection. */
  closed: boolean
}

/** Status codes at the start of every response head in `data`. */
export function statusesIn (data: Buffer): number[] {
  const text = data.toString('latin1')
  const out: number[] = []
  const re = /(?:^|\r?\n)HTTP\/\d\.\d (\d{3})/g
  let m
  while ((m = re.exec(text)) !== null) out.push(Number(m[1]))
  return out
}

/**
 * Writes `bytes` to the proxy on a raw socket, reads what comes back until
 * the peer closes, or a response head is complete and the line is quiet for
 * `quietMs`, or `maxMs` passed, then ends the socket as `ending` says (RST
 * is what a client that gives up after a refusal does). Resolves after the
 * socket is fully closed.
 */
export async function rawExchange (port: number, bytes: Buffer, ending: Ending, opts: { quietMs?: number, maxMs?: number, after?: Buffer } = {}): Promise<Exchange> {
  const quietMs = opts.quietMs ?? 60
  const maxMs = opts.maxMs ?? 1500
  return await new Promise((resolve) => {
    const chunks: Buffer[] = []
    let closed = false
    let closing = false
    let quiet: NodeJS.Timeout | undefined
    // Half-open: a peer's FIN does not close our side, so the ending chosen
    // (an RST after a refusal) still reaches a proxy that has ended its side.
    const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true })
    socket.on('error', () => {})
    socket.on('end', () => { clearTimeout(quiet); finish() })
    const finish = (): void => {
      clearTimeout(quiet)
      clearTimeout(overall)
      if (closing) return
      closing = true
      if (closed || socket.destroyed) { done(); return }
      if (opts.after !== undefined && opts.after.length > 0) socket.write(opts.after)
      if (ending === 'rst') socket.resetAndDestroy()
      else { socket.end(); setTimeout(() => socket.destroy(), 200).unref() }
      socket.once('close', done)
    }
    let finished = false
    const done = (): void => {
      if (finished) return
      finished = true
      const data = Buffer.concat(chunks)
      resolve({ statuses: statusesIn(data), data, closed })
    }
    const overall: NodeJS.Timeout = setTimeout(finish, maxMs)
    socket.on('data', (c: Buffer) => {
      chunks.push(c)
      clearTimeout(quiet)
      if (Buffer.concat(chunks).includes('\r\n\r\n')) quiet = setTimeout(finish, quietMs)
    })
    socket.on('close', () => { if (!closing) closed = true; clearTimeout(quiet); clearTimeout(overall); done() })
    socket.on('connect', () => { socket.write(bytes) })
  })
}

/**
 * True when `raw` (a header value's bytes as received) is a valid HTTP field
 * value: HTAB, SP, VCHAR and obs-text only (RFC 9110 5.5), so no CR, LF or NUL.
 */
export function isValidFieldValue (raw: Buffer): boolean {
  for (const b of raw) {
    if (b === 0x09 || (b >= 0x20 && b <= 0x7e) || b >= 0x80) continue
    return false
  }
  return true
}

export interface RawRequest {
  head: Buffer
  path: string
  /** The raw bytes of each Cookie header line's value. */
  cookies: Buffer[]
}

export interface RawUpstream {
  port: number
  origin: string
  requests: RawRequest[]
  /** Set-Cookie lines (raw bytes) answered for GET /set/<id>. */
  setCookies: Map<string, Buffer[]>
  close: () => Promise<void>
}

/**
 * An HTTP/1.1 upstream over raw TCP: `GET /set/<id>` answers 200 with the
 * Set-Cookie lines registered under id, byte for byte; anything else answers
 * 200 "ok". Records every request head with its raw Cookie values.
 */
export async function startRawUpstream (): Promise<RawUpstream> {
  const sockets = new Set<net.Socket>()
  const requests: RawRequest[] = []
  const setCookies = new Map<string, Buffer[]>()
  const server = net.createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
    socket.on('error', () => {})
    let buf = Buffer.alloc(0)
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk])
      let end
      while ((end = buf.indexOf('\r\n\r\n')) !== -1) {
        const head = buf.subarray(0, end)
        buf = buf.subarray(end + 4)
        const lines = splitLines(head)
        const path = lines[0]!.toString('latin1').split(' ')[1] ?? '/'
        const cookies = lines.slice(1).filter((l) => l.subarray(0, 7).toString('latin1').toLowerCase() === 'cookie:').map((l) => trimOws(l.subarray(7)))
        requests.push({ head, path, cookies })
        const m = /^\/set\/([\w-]+)/.exec(path)
        const lines2 = m === null ? [] : setCookies.get(m[1]!) ?? []
        const parts: Buffer[] = [Buffer.from('HTTP/1.1 200 OK\r\ncontent-length: 3\r\ncontent-type: text/plain\r\n')]
        for (const l of lines2) parts.push(Buffer.from('Set-Cookie: '), l, Buffer.from('\r\n'))
        parts.push(Buffer.from('\r\nok\n'))
        socket.write(Buffer.concat(parts))
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as net.AddressInfo).port
  return {
    port,
    origin: `http://127.0.0.1:${port}`,
    requests,
    setCookies,
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

function splitLines (head: Buffer): Buffer[] {
  const out: Buffer[] = []
  let start = 0
  for (let i = 0; i < head.length - 1; i++) {
    if (head[i] === 0x0d && head[i + 1] === 0x0a) { out.push(head.subarray(start, i)); start = i + 2; i++ }
  }
  out.push(head.subarray(start))
  return out
}

function trimOws (b: Buffer): Buffer {
  let s = 0
  let e = b.length
  while (s < e && (b[s] === 0x20 || b[s] === 0x09)) s++
  while (e > s && (b[e - 1] === 0x20 || b[e - 1] === 0x09)) e--
  return b.subarray(s, e)
}

/**
 * Sends one GET through the proxy for `profile` on a raw socket (Connection:
 * close) and returns the response status (0: no response) and its raw head.
 */
export async function proxiedGet (proxyPort: number, url: string, profile: string): Promise<{ status: number, head: string }> {
  const host = new URL(url).host
  const r = await rawExchange(proxyPort, Buffer.from(`GET ${url} HTTP/1.1\r\nHost: ${host}\r\nX-Session-Profile: ${profile}\r\nConnection: close\r\n\r\n`, 'latin1'), 'fin', { maxMs: 10_000, quietMs: 200 })
  const text = r.data.toString('latin1')
  return { status: r.statuses[0] ?? 0, head: text.slice(0, Math.max(0, text.indexOf('\r\n\r\n'))) }
}

/** A compact, exact rendering of bytes for reports: JSON string of the latin1 text. */
export function showBytes (b: Buffer | string): string {
  return JSON.stringify(typeof b === 'string' ? b : b.toString('latin1'))
}

/**
 * Runs an async property with fast-check and reports a failure to tap with
 * the shrunk counterexample rendered exactly (`render`), the seed and the
 * path to replay it (FUZZ_SEED=<seed>; fc's `path` parameter). With
 * FUZZ_REPORT=<file>, failures are also appended there as JSON lines.
 */
export async function checkProperty<T> (t: Test, name: string, arb: fc.Arbitrary<T>, predicate: (value: T) => Promise<void>, params: fc.Parameters<[T]>, render: (value: T) => string): Promise<void> {
  const details = await fc.check(fc.asyncProperty(arb, predicate), params)
  if (!details.failed) {
    t.pass(`${name}: ${details.numRuns} runs (seed ${details.seed}${details.interrupted ? ', stopped at the time limit' : ''})`)
    return
  }
  const example = details.counterexample === null ? '(none)' : render(details.counterexample[0])
  const error = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance)
  const report = { property: name, seed: details.seed, path: details.counterexamplePath, shrinks: details.numShrinks, example, error }
  if (process.env.FUZZ_REPORT !== undefined && process.env.FUZZ_REPORT !== '') appendFileSync(process.env.FUZZ_REPORT, JSON.stringify(report) + '\n')
  t.fail(`${name}: counterexample after ${details.numRuns} runs, ${details.numShrinks} shrinks (seed ${details.seed}, path ${String(details.counterexamplePath)}):\n  ${example}\n  ${error}`)
}

/**
 * A long run (FUZZ_RUNS=2000, `npm run fuzz`) outlasts tap's 180 s per file:
 * give the file 250 ms per run on top. The bounded default keeps tap's timeout.
 */
export function raiseTimeoutForLongRuns (t: Test): void {
  if (process.env.FUZZ_RUNS === undefined || process.env.FUZZ_RUNS === '') return
  t.setTimeout(Math.max(180_000, 60_000 + fuzzRuns(1) * 250))
}
