/**
 * pino, asynchronous (no sync I/O on the request path), pretty-printed when
 * stdout is a terminal. Secrets are redacted wherever they could appear.
 *
 * Lines go to one buffered asynchronous destination (LineBuffer): the access
 * log adds a line per request, and a write(2) per line cost more than the
 * rest of the line. It replaces pino.destination (sonic-boom), which turns
 * every written chunk back into a Buffer and measures its growing buffer's
 * byte length on every line: measured here, 5.9 us of CPU per access line
 * with sonic-boom against 3.7 with this, pino's own formatting included.
 * The buffer is written out, off the event loop (fs.write),
 * - when it reaches ACCESS_BUFFER_BYTES,
 * - after every line of the main logger (start-up, warnings, errors, the
 *   process guard's line): it is low-volume and those lines must not wait,
 * - every FLUSH_INTERVAL_MS while anything is buffered (an idle proxy's
 *   last access lines),
 * - on SIGTERM/SIGINT (cli.ts awaits flushLogger), and synchronously on
 *   process exit (an 'exit' listener), so a fatal exit keeps its last lines.
 */
import fs from 'node:fs'
import { pino, type DestinationStream, type Logger } from 'pino'
import type { LogFormat, LogLevel } from './config/schema.js'
import type { ProxiedLine } from './contracts/proxy-deps.js'

const SECRET_HEADERS = ['cookie', 'set-cookie', 'authorization', 'proxy-authorization']

export const REDACT_PATHS = [
  ...SECRET_HEADERS.flatMap((h) => [`req.headers["${h}"]`, `res.headers["${h}"]`, `headers["${h}"]`]),
  'password', '*.password', 'token', '*.token'
]

/** Loggers writing through pino-pretty (their stream is the transport's). */
const prettyLoggers = new WeakSet<Logger>()

/** Characters of log lines gathered before one write. */
export const ACCESS_BUFFER_BYTES = 32_768
/** The longest a buffered line waits on an otherwise idle proxy. */
export const FLUSH_INTERVAL_MS = 250

/** What the buffered destination exposes beyond a stream. */
interface BufferedDestination extends DestinationStream {
  flush: (cb?: (err?: Error) => void) => void
  flushSync: () => void
  /** Characters buffered, not yet handed to a write. */
  readonly pending: number
}

/** A write that may complete later: EAGAIN on a non-blocking pipe nobody is reading fast enough. */
const RETRY_MS = 50

/**
 * Lines gathered in an array and joined once per write: no per-line copy
 * of the buffer so far, one Buffer per write. At most one fs.write is in
 * flight, so lines reach the file in order. A destination that fails
 * (EPIPE: nobody reads stdout any more) drops lines instead of throwing:
 * a log must never take the proxy down.
 */
export class LineBuffer implements BufferedDestination {
  private chunks: string[] = []
  private chars = 0
  private writing = false
  private broken = false
  private waiters: Array<(err?: Error) => void> = []

  constructor (private readonly fd: number, private readonly flushAt = ACCESS_BUFFER_BYTES) {}

  get pending (): number {
    return this.chars
  }

  write (line: string): boolean {
    if (this.broken) return true
    this.chunks.push(line)
    this.chars += line.length
    if (this.chars >= this.flushAt && !this.writing) this.writeOut()
    return true
  }

  /** Writes what is buffered; `cb` runs once it (and any write in flight) is done. */
  flush (cb?: (err?: Error) => void): void {
    if (cb !== undefined) this.waiters.push(cb)
    if (!this.writing) this.writeOut()
  }

  /** Writes what is buffered now, synchronously (process exit). A write in flight is the kernel's already. */
  flushSync (): void {
    if (this.broken || this.chars === 0) return
    const data = this.take()
    try {
      fs.writeSync(this.fd, data)
    } catch {
      this.broken = true
    }
  }

  private take (): string {
    const data = this.chunks.length === 1 ? this.chunks[0]! : this.chunks.join('')
    this.chunks = []
    this.chars = 0
    return data
  }

  private writeOut (): void {
    if (this.broken || this.chars === 0) {
      this.settle()
      return
    }
    this.writing = true
    this.send(Buffer.from(this.take(), 'utf8'), 0)
  }

  private send (buf: Buffer, offset: number): void {
    fs.write(this.fd, buf, offset, buf.length - offset, null, (err, written) => {
      if (err !== null) {
        if (err.code === 'EAGAIN') {
          setTimeout(() => this.send(buf, offset), RETRY_MS).unref()
          return
        }
        this.broken = true
        this.writing = false
        this.settle(err)
        return
      }
      if (offset + written < buf.length) {
        this.send(buf, offset + written)
        return
      }
      this.writing = false
      // More arrived meanwhile: a waiter wants it out, or the buffer is full again.
      if (this.chars > 0 && (this.waiters.length > 0 || this.chars >= this.flushAt)) this.writeOut()
      else this.settle()
    })
  }

  private settle (err?: Error): void {
    if (this.waiters.length === 0) return
    const waiters = this.waiters
    this.waiters = []
    for (const w of waiters) w(err)
  }
}

function flushQuietly (dest: BufferedDestination): void {
  try {
    dest.flush()
  } catch {
    // Nothing a log flush does may throw into a request.
  }
}

/**
 * A buffered asynchronous destination on a file descriptor, with the
 * interval flush above (unref'd: it never keeps the process alive) and the
 * synchronous flush at exit.
 */
export function bufferedDestination (fd = 1): BufferedDestination {
  const dest = new LineBuffer(fd)
  const timer = setInterval(() => { if (dest.pending > 0) flushQuietly(dest) }, FLUSH_INTERVAL_MS)
  timer.unref()
  if (exitFlushed.size === 0) process.on('exit', () => { for (const d of exitFlushed) d.flushSync() })
  exitFlushed.add(dest)
  return dest
}

/** Destinations written out synchronously at exit (one listener for all; they live as long as the process). */
const exitFlushed = new Set<LineBuffer>()

/** Whether lines are pretty-printed: logFormat, with auto meaning stdout is a terminal. */
export function isPretty (format: LogFormat): boolean {
  return format === 'pretty' || (format === 'auto' && process.stdout.isTTY === true)
}

export function createLogger (level: LogLevel, opts: { pretty?: boolean, destination?: NodeJS.WritableStream } = {}): Logger {
  const pretty = opts.pretty ?? (process.stdout.isTTY === true && opts.destination === undefined)
  const base = {
    level,
    base: { pid: process.pid },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' }
  }
  if (pretty) {
    // singleLine: one line per access-log entry (and per message), fields inline.
    const log = pino({ ...base, transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname', singleLine: true } } })
    prettyLoggers.add(log)
    return log
  }
  if (opts.destination !== undefined) return pino(base, opts.destination)
  const dest = bufferedDestination(1)
  return pino({
    ...base,
    hooks: {
      // The main logger's lines are written at once (see the top of the file).
      logMethod (args, method) {
        method.apply(this, args)
        flushQuietly(dest)
      }
    }
  }, dest)
}

/**
 * The per-request access log: same destination and level as `log`, without
 * the redaction pass (it costs a compiled function call per line) and
 * without the main logger's flush per line. Safe because access lines carry
 * only method, host, the URL without its query, status, duration, profile
 * and error codes, never a header value. A pretty (terminal) logger is
 * returned as is.
 */
export function createAccessLogger (log: Logger): Logger {
  const stream = (log as unknown as Record<symbol, unknown>)[pino.symbols.streamSym] as NodeJS.WritableStream | undefined
  // A pretty logger's stream is its transport's, not the buffered destination.
  if (stream === undefined || prettyLoggers.has(log)) return log
  return pino({ level: log.level, base: { pid: process.pid } }, stream as DestinationStream)
}

/** What JSON.stringify would escape, and anything outside ASCII: such a string takes JSON.stringify, which writes what pino writes. */
// eslint-disable-next-line no-control-regex -- control characters are exactly what is looked for
const NEEDS_ESCAPE = /["\\\u0000-\u001f\u007f-\uffff]/

function jsonString (s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : '"' + s + '"'
}

/**
 * The access log's one hot line, "proxied", written for every exchange that
 * went through: byte for byte the line pino writes for
 * `access.info({ req, method, host, url, status, ms, profile }, 'proxied')`
 * (test/log-buffer.test.ts compares them), but built by one template instead
 * of pino's generic serialiser, which walks the object's keys, checks each
 * for a serializer and escapes each value, and was most of the line's cost.
 * Every other access line (rejections, errors) still goes through pino.
 *
 * Null when the logger's level leaves the line out (the level is fixed once
 * the proxy runs). A pretty logger, or one on a destination that is not the
 * buffered one, gets a writer that calls pino itself.
 */
export function createProxiedLine (access: Logger): ProxiedLine | null {
  if (!access.isLevelEnabled('info')) return null
  const stream = (access as unknown as Record<symbol, unknown>)[pino.symbols.streamSym]
  if (!(stream instanceof LineBuffer) || prettyLoggers.has(access)) {
    return (req, method, host, url, status, ms, profile) => access.info({ req, method, host, url, status, ms, profile }, 'proxied')
  }
  const head = '{"level":30,"time":'
  const pid = `,"pid":${process.pid},"req":`
  return (req, method, host, url, status, ms, profile) => {
    stream.write(head + Date.now() + pid + req + ',"method":' + jsonString(method) + ',"host":' + jsonString(host) + ',"url":' + jsonString(url) +
      ',"status":' + status + ',"ms":' + ms + ',"profile":' + jsonString(profile) + ',"msg":"proxied"}\n')
  }
}

/** Resolves once what the logger buffered is written (or after maxWaitMs, whichever comes first). */
export async function flushLogger (log: Logger, maxWaitMs = 2000): Promise<void> {
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, maxWaitMs)
    timer.unref()
    try {
      log.flush(() => { clearTimeout(timer); resolve() })
    } catch {
      clearTimeout(timer)
      resolve()
    }
  })
}
