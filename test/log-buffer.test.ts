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
import { createAccessLogger, createProxiedLine, LineBuffer } from '../src/log.js'

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

t.test('the "proxied" line is the line pino writes for the same fields, byte for byte', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sp-logline-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'out')
  const fd = openSync(file, 'w')
  const dest = new LineBuffer(fd, 1 << 20)
  const access = createAccessLogger(pino({ level: 'info', base: { pid: process.pid } }, dest))
  const line = createProxiedLine(access)
  if (line === null) throw new Error('info is enabled')
  const odd = ['plain', 'with "quotes"', 'back\\slash', 'tab\there', 'nul\u0000', 'del\u007f', 'caf\u00e9', '\u{1F600}', 'lone \ud800', '']
  for (const [i, s] of odd.entries()) {
    line(i, 'GET', `h${i}.test:80`, `http://h.test/${s}`, 200 + i, i / 7, s)
    access.info({ req: i, method: 'GET', host: `h${i}.test:80`, url: `http://h.test/${s}`, status: 200 + i, ms: i / 7, profile: s }, 'proxied')
  }
  await new Promise<void>((resolve) => dest.flush(() => resolve()))
  closeSync(fd)
  const lines = readFileSync(file, 'utf8').split('\n').slice(0, -1).map((l) => l.replace(/"time":\d+/, '"time":0'))
  t.equal(lines.length, odd.length * 2)
  for (let i = 0; i < odd.length; i++) {
    const ours = lines[2 * i]!
    const pinos = lines[2 * i + 1]!
    if (odd[i]!.includes('\ud800')) {
      // pino writes a lone surrogate as it is, which UTF-8 turns into U+FFFD; this line escapes it and keeps it.
      t.equal((JSON.parse(ours) as { profile: string }).profile, odd[i], 'a lone surrogate survives')
      continue
    }
    t.equal(ours, pinos, `${JSON.stringify(odd[i])}: same bytes`)
  }
})

t.test('no "proxied" writer when the level leaves the line out; a non-buffered destination goes through pino', async (t) => {
  t.equal(createProxiedLine(pino({ level: 'warn' })), null)
  const out: string[] = []
  const log = pino({ level: 'info', base: null, timestamp: false }, { write: (s: string) => { out.push(s) } })
  createProxiedLine(log)!(1, 'GET', 'h.test:80', 'http://h.test/', 200, 1.5, 'default')
  t.same(out.map((l) => JSON.parse(l) as unknown), [{ level: 30, req: 1, method: 'GET', host: 'h.test:80', url: 'http://h.test/', status: 200, ms: 1.5, profile: 'default', msg: 'proxied' }])
})
