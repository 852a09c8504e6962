/**
 * The persisted event files stay bounded: per profile by lines and by bytes
 * (events.maxFileBytes), and all together (events.maxTotalFileBytes, the
 * least recently written files go first, also files of an earlier run).
 */
import { readdirSync, readFileSync, statSync, utimesSync, writeFileSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import pino from 'pino'
import t from 'tap'
import type { EventsConfig } from '../../src/contracts/settings.js'
import { SessionEvents } from '../../src/observe/events.js'
import { cleanup, tempDir } from '../helpers/proxy.js'

const log = pino({ level: 'silent' })
const config = (over: Partial<EventsConfig> = {}): EventsConfig => ({ maxPerProfile: 1000, maxTotal: 100000, persist: true, sessionCookies: [], fixationWindowMs: 0, ...over })
// About 300 bytes per event in the file.
const big = (i: number) => ({ type: 'session.loggedOut', requestId: i, url: `http://app.test/${'x'.repeat(200)}`, signal: 'status' } as const)

t.test('one profile\'s file stays within events.maxFileBytes, keeping the newest events', async (t) => {
  const dir = tempDir('sp-evfile-')
  t.teardown(() => cleanup(dir))
  const ev = new SessionEvents(config({ maxFileBytes: 8192 }), dir, log)
  for (let i = 1; i <= 200; i++) {
    ev.record('p', big(i))
    if (i % 10 === 0) await new Promise((resolve) => setImmediate(resolve))
  }
  await ev.close()
  const file = join(dir, 'events', 'p.jsonl')
  t.ok(statSync(file).size <= 8192, `the file has ${statSync(file).size} bytes, limit 8192`)
  const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { seq: number })
  t.equal(lines.at(-1)!.seq, 200, 'the newest event is kept')
  const again = new SessionEvents(config({ maxFileBytes: 8192 }), dir, log)
  const page = again.list('p', { limit: 1000 })
  t.equal(page.lastSeq, 200, 'seq continues from the file')
  t.ok(page.events.length > 5 && page.events.length < 200, `${page.events.length} events reloaded`)
  await again.close()
})

t.test('all files stay within events.maxTotalFileBytes: the least recently written go, also from an earlier run', async (t) => {
  const dir = tempDir('sp-evfile-')
  t.teardown(() => cleanup(dir))
  mkdirSync(join(dir, 'events'), { recursive: true })
  // A file of an earlier run, old and big.
  writeFileSync(join(dir, 'events', 'old.jsonl'), (JSON.stringify({ ...big(0), seq: 1, time: new Date(0).toISOString(), profile: 'old' }) + '\n').repeat(20))
  utimesSync(join(dir, 'events', 'old.jsonl'), new Date(1000), new Date(1000))
  const ev = new SessionEvents(config({ maxFileBytes: 8192, maxTotalFileBytes: 16384 }), dir, log)
  for (const p of ['a', 'b', 'c', 'd']) {
    for (let i = 1; i <= 20; i++) ev.record(p, big(i))
    await new Promise((resolve) => setImmediate(resolve))
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  await ev.close()
  const files = readdirSync(join(dir, 'events')).filter((f) => f.endsWith('.jsonl')).sort()
  const total = files.reduce((n, f) => n + statSync(join(dir, 'events', f)).size, 0)
  t.ok(total <= 16384, `${total} bytes in ${files.join(', ')}, limit 16384`)
  t.notOk(files.includes('old.jsonl'), 'the earlier run\'s file went first')
  t.ok(files.includes('d.jsonl'), 'the most recently written file stays')
  t.same(ev.list('d').events.length > 0, true)
})

t.test('persistOnly: a memory-only profile writes no event file', async (t) => {
  const dir = tempDir('sp-evfile-')
  t.teardown(() => cleanup(dir))
  const ev = new SessionEvents(config(), dir, log)
  ev.persistOnly((p) => p !== 'mem')
  ev.record('mem', big(1))
  ev.record('disk', big(1))
  await ev.close()
  t.same(readdirSync(join(dir, 'events')), ['disk.jsonl'])
  t.equal(ev.list('mem').events.length, 1, 'still in memory')
  new SessionEvents(config({ persist: false }), dir, log).persistOnly(() => false)
})

t.test('listing a profile without events or file holds nothing for it', async (t) => {
  const dir = tempDir('sp-evfile-')
  t.teardown(() => cleanup(dir))
  const ev = new SessionEvents(config(), dir, log)
  for (let i = 0; i < 100; i++) t.same(ev.list(`nobody-${i}`).events, [])
  t.equal((ev as unknown as { logs: Map<string, unknown> }).logs.size, 0, 'no log per asked name')
  ev.record('p', big(1))
  await ev.close()
  const again = new SessionEvents(config(), dir, log)
  t.equal(again.list('p').events.length, 1, 'a profile with a file is loaded from it')
  await again.close()
})

t.test('events persist by default: config/default.yaml', async (t) => {
  const yaml = readFileSync(new URL('../../config/default.yaml', import.meta.url), 'utf8')
  t.match(yaml, /\nevents:\n(?:.*\n)*?\s+persist: true\n/)
  t.match(yaml, /maxFileBytes: \d+/)
  t.match(yaml, /maxTotalFileBytes: \d+/)
})
