/**
 * The log's buffered destination (issue 12): lines are gathered and written
 * in order by asynchronous writes, a flush callback runs once they are out,
 * a fatal exit still writes what was buffered, and a destination nobody
 * reads (EPIPE) drops lines instead of throwing.
 */
import { spawnSync } from 'node:child_process'
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { pino } from 'pino'
import t from 'tap'
import { LineBuffer } from '../src/log.js'

t.test('lines are buffered, then written in order; flush waits for the write', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sp-logbuf-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'out')
  const fd = openSync(file, 'w')
  const dest = new LineBuffer(fd, 1000)
  const log = pino({ base: null, timestamp: false }, dest)
  for (let i = 0; i < 300; i++) log.info({ i, url: `http://h.test/p/${i}` }, 'proxied')
  await new Promise<void>((resolve) => dest.flush(() => resolve()))
  t.equal(dest.pending, 0)
  const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { i: number, url: string })
  t.same(lines.map((l) => l.i), Array.from({ length: 300 }, (_, i) => i), 'every line, in order')
  t.equal(lines[7]!.url, 'http://h.test/p/7')
  // Below the threshold nothing is written until a flush.
  dest.write('{"tail":1}\n')
  t.equal(dest.pending, 11)
  await new Promise<void>((resolve) => dest.flush(() => resolve()))
  t.match(readFileSync(file, 'utf8'), /\{"tail":1\}\n$/)
  closeSync(fd)
})

t.test('a fatal exit still writes the buffered lines (exit listener)', async (t) => {
  const logModule = pathToFileURL(join(process.cwd(), 'dist', 'log.js')).href
  const script = `import { createLogger, createAccessLogger } from ${JSON.stringify(logModule)}
const log = createLogger('info', { pretty: false })
const access = createAccessLogger(log)
for (let i = 0; i < 5; i++) access.info({ i }, 'proxied')
process.exit(3)`
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' })
  t.equal(r.status, 3)
  const proxied = r.stdout.trim().split('\n').filter((l) => l.includes('"proxied"'))
  t.equal(proxied.length, 5, r.stderr)
})

t.test('a destination that fails drops lines and never throws', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sp-logbuf-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const fd = openSync(join(dir, 'ro'), 'w')
  closeSync(fd)
  // A closed descriptor: every write fails with EBADF.
  const dest = new LineBuffer(fd, 10)
  const err = await new Promise<Error | undefined>((resolve) => {
    dest.write('{"a":1}\n{"b":2}\n')
    dest.flush(resolve)
  })
  t.ok(err !== undefined, 'the flush reports the failure')
  t.doesNotThrow(() => { dest.write('{"c":3}\n'); dest.flush(); dest.flushSync() })
})
