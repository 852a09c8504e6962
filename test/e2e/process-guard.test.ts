/**
 * The process guard logs and counts what escapes every handler and keeps
 * serving; the e2e helper turns its message into a test failure.
 */
import t from 'tap'
import { adminGet, assertNoGuard, cleanup, startProxy } from '../helpers/proxy.js'
import { sleep } from '../helpers/raw-client.js'
import { GUARD_MESSAGE } from '../../src/process-guard.js'

// Loaded into the proxy process only: SIGUSR2 provokes one uncaught exception and one unhandled rejection.
const PROVOKE = "process.on('SIGUSR2', () => { setTimeout(() => { throw new Error('provoked by the test') }); void Promise.reject(new Error('provoked rejection')) })"

t.test('an uncaught exception and an unhandled rejection are logged, counted, and the proxy keeps serving', async (t) => {
  const preload = `--import=data:text/javascript;base64,${Buffer.from(PROVOKE).toString('base64')}`
  const proxy = await startProxy({ allowGuard: true, env: { NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} ${preload}`.trim() } })
  t.teardown(() => cleanup(proxy.dataDir))
  t.doesNotThrow(() => assertNoGuard(proxy), 'quiet before')
  proxy.proc.kill('SIGUSR2')
  while (proxy.output.filter((l) => l.includes(GUARD_MESSAGE)).length < 2) await sleep(50)
  const lines = proxy.output.filter((l) => l.includes(GUARD_MESSAGE)).map((l) => JSON.parse(l) as { level: number, origin: string, err: { message: string } })
  t.same(lines.map((l) => l.level), [50, 50], 'logged at error level')
  t.same(lines.map((l) => l.err.message).sort(), ['provoked by the test', 'provoked rejection'])
  t.equal((await adminGet(proxy, '/_session/health')).status, 200, 'still serving')
  const metrics = await adminGet(proxy, '/_session/metrics')
  t.match(metrics.body, /^session_proxy_uncaught_errors_total 2$/m, 'counted')
  t.throws(() => assertNoGuard(proxy), /process guard caught an uncaught error/, 'the helper fails a test in which the guard fired')
  t.equal(await proxy.stop(), 0)
})
