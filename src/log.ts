/**
 * pino, asynchronous (no sync I/O on the request path), pretty-printed when
 * stdout is a terminal. Secrets are redacted wherever they could appear.
 *
 * Lines go to one buffered destination (sonic-boom, `minLength`): the access
 * log adds a line per request, and a write(2) per line cost more than the
 * rest of the line. The buffer is written out
 * - when it reaches ACCESS_BUFFER_BYTES,
 * - after every line of the main logger (start-up, warnings, errors, the
 *   process guard's line): it is low-volume and those lines must not wait,
 * - every FLUSH_INTERVAL_MS while anything is buffered (an idle proxy's
 *   last access lines),
 * - on SIGTERM/SIGINT (cli.ts awaits flushLogger), and synchronously on
 *   process exit (pino's exit hook for its destinations).
 */
import { pino, type DestinationStream, type Logger } from 'pino'
import type { LogFormat, LogLevel } from './config/schema.js'

const SECRET_HEADERS = ['cookie', 'set-cookie', 'authorization', 'proxy-authorization']

export const REDACT_PATHS = [
  ...SECRET_HEADERS.flatMap((h) => [`req.headers["${h}"]`, `res.headers["${h}"]`, `headers["${h}"]`]),
  'password', '*.password', 'token', '*.token'
]

/** Loggers writing through pino-pretty (their stream is the transport's). */
const prettyLoggers = new WeakSet<Logger>()

/** Bytes of log lines gathered before one write. */
export const ACCESS_BUFFER_BYTES = 4096
/** The longest a buffered line waits on an otherwise idle proxy. */
export const FLUSH_INTERVAL_MS = 250

/** What the buffered destination exposes beyond a stream (sonic-boom). */
interface BufferedDestination extends DestinationStream {
  flush: (cb?: (err?: Error) => void) => void
  /** sonic-boom's count of buffered, unwritten bytes. */
  _len?: number
}

function flushQuietly (dest: BufferedDestination): void {
  try {
    dest.flush()
  } catch {
    // A destroyed destination (EPIPE: nobody reads stdout any more) has nothing to flush.
  }
}

/**
 * A buffered asynchronous destination on a file descriptor, with the
 * interval flush above (unref'd: it never keeps the process alive).
 */
export function bufferedDestination (fd = 1): BufferedDestination {
  const dest = pino.destination({ dest: fd, sync: false, minLength: ACCESS_BUFFER_BYTES }) as unknown as BufferedDestination
  const timer = setInterval(() => { if ((dest._len ?? 0) > 0) flushQuietly(dest) }, FLUSH_INTERVAL_MS)
  timer.unref()
  return dest
}

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
