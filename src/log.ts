/**
 * pino, asynchronous (no sync I/O on the request path), pretty-printed when
 * stdout is a terminal. Secrets are redacted wherever they could appear.
 */
import { pino, type Logger } from 'pino'
import type { LogLevel } from './config/schema.js'

const SECRET_HEADERS = ['cookie', 'set-cookie', 'authorization', 'proxy-authorization']

export const REDACT_PATHS = [
  ...SECRET_HEADERS.flatMap((h) => [`req.headers["${h}"]`, `res.headers["${h}"]`, `headers["${h}"]`]),
  'password', '*.password', 'token', '*.token'
]

export function createLogger (level: LogLevel, opts: { pretty?: boolean, destination?: NodeJS.WritableStream } = {}): Logger {
  const pretty = opts.pretty ?? (process.stdout.isTTY === true && opts.destination === undefined)
  const base = {
    level,
    base: { pid: process.pid },
    redact: { paths: REDACT_PATHS, censor: '[redacted]' }
  }
  if (pretty) {
    return pino({ ...base, transport: { target: 'pino-pretty', options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' } } })
  }
  if (opts.destination !== undefined) return pino(base, opts.destination)
  return pino(base, pino.destination({ dest: 1, sync: false }))
}

/**
 * The per-request access log: same destination and level as `log`, without
 * the redaction pass (it costs a compiled function call per line). Safe
 * because access lines carry only method, host, status, duration, profile
 * and error codes, never a header value. A pretty (terminal) logger is
 * returned as is.
 */
export function createAccessLogger (log: Logger): Logger {
  const stream = (log as unknown as Record<symbol, unknown>)[pino.symbols.streamSym] as NodeJS.WritableStream | undefined
  if (stream === undefined || process.stdout.isTTY === true) return log
  return pino({ level: log.level, base: { pid: process.pid } }, stream as pino.DestinationStream)
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
