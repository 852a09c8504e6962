/**
 * Process-level handling lives in the process guard: SIGXFSZ (a write past
 * ulimit -f) must not end the process, and opening the data directory does
 * not install process handlers of its own.
 */
import t from 'tap'
import pino from 'pino'
import { installProcessGuard } from '../src/process-guard.js'
import { CookieJarStore } from '../src/session/jar-files.js'
import { cleanup, tempDir } from './helpers/proxy.js'

t.test('the guard handles SIGXFSZ; the jar store does not touch process handlers', { skip: process.platform === 'win32' }, async (t) => {
  // The test runner (signal-exit) may listen already: count what each step adds.
  const initial = process.listenerCount('SIGXFSZ')
  const dataDir = tempDir()
  const store = new CookieJarStore(dataDir)
  store.init()
  t.teardown(() => { store.release(); cleanup(dataDir) })
  t.equal(process.listenerCount('SIGXFSZ'), initial, 'opening the data directory installs no signal handler')
  const before = { exc: process.listenerCount('uncaughtException'), rej: process.listenerCount('unhandledRejection') }
  installProcessGuard(pino({ level: 'silent' }))
  t.teardown(() => {
    for (const ev of ['uncaughtException', 'unhandledRejection', 'SIGXFSZ'] as const) {
      const ls = process.listeners(ev as 'SIGXFSZ')
      process.removeListener(ev as 'SIGXFSZ', ls[ls.length - 1]!)
    }
  })
  t.equal(process.listenerCount('SIGXFSZ'), initial + 1, 'SIGXFSZ has a listener, so a write past the limit fails with EFBIG instead of ending the process')
  t.equal(process.listenerCount('uncaughtException'), before.exc + 1)
  t.equal(process.listenerCount('unhandledRejection'), before.rej + 1)
})
