/**
 * The last line of defence: an error that escapes every socket, stream and
 * promise handler is logged at error level with one fixed message, counted
 * (session_proxy_uncaught_errors_total) and the proxy keeps serving the
 * other clients. It does not hide bugs: the e2e helper fails any test in
 * which this message appears (test/helpers/proxy.ts).
 */
import type { Logger } from 'pino'

export const GUARD_MESSAGE = 'uncaught error caught by the process guard (this is a bug)'

let caught = 0

/** How many errors the guard caught since the process started. */
export function uncaughtErrors (): number {
  return caught
}

export function installProcessGuard (log: Logger): void {
  // A write beyond the file-size limit (ulimit -f, RLIMIT_FSIZE) raises
  // SIGXFSZ, whose default action ends the process: every session would be
  // lost for one jar that could not grow. With a listener the write fails
  // with EFBIG instead, which the journal reports and retries like a full disk.
  if (process.platform !== 'win32') process.on('SIGXFSZ', () => {})
  process.on('uncaughtException', (err: Error, origin: string) => {
    caught++
    log.error({ err, origin }, GUARD_MESSAGE)
  })
  process.on('unhandledRejection', (reason: unknown) => {
    caught++
    log.error({ err: reason, origin: 'unhandledRejection' }, GUARD_MESSAGE)
  })
}
