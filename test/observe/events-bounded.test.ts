import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import t from 'tap'
import { SessionEvents } from '../../src/observe/events.js'
import type { EventsConfig } from '../../src/contracts/settings.js'

const log = pino({ level: 'silent' })
const config = (over: Partial<EventsConfig> = {}): EventsConfig => ({ maxPerProfile: 5, maxTotal: 1000, persist: false, sessionCookies: [], fixationWindowMs: 0, ...over })
const jarCleared = { type: 'jar.cleared', requestId: null } as const

t.test('subscribing to 20,000 names that never record an event leaves no log behind', async (t) => {
  const ev = new SessionEvents(config(), null, log)
  for (let i = 0; i < 20_000; i++) {
    const off = ev.subscribe(`vu-${i}`, () => {})
    off()
  }
  t.equal(ev.loadedProfiles, 0)
})

t.test('a log with events keeps its numbering across subscribers coming and going', async (t) => {
  const ev = new SessionEvents(config(), null, log)
  ev.record('a', jarCleared)
  ev.record('a', jarCleared)
  ev.subscribe('a', () => {})()
  const seen: number[] = []
  const off = ev.subscribe('a', (e) => seen.push(e.seq))
  ev.record('a', jarCleared)
  off()
  t.same(seen, [3])
  t.equal(ev.list('a').lastSeq, 3)
  // A second subscriber keeps an empty log alive until it leaves.
  const off1 = ev.subscribe('b', () => {})
  const off2 = ev.subscribe('b', () => {})
  off1()
  t.equal(ev.loadedProfiles, 2)
  off2()
  t.equal(ev.loadedProfiles, 1)
})

t.test('forget drops the events in memory, from the cap too', async (t) => {
  const ev = new SessionEvents(config({ maxTotal: 4 }), null, log)
  for (let i = 0; i < 3; i++) ev.record('gone', jarCleared)
  await ev.forget('gone')
  t.equal(ev.list('gone').lastSeq, 0)
  t.equal(ev.loadedProfiles, 0)
  for (let i = 0; i < 4; i++) ev.record('kept', jarCleared)
  t.same(ev.list('kept').events.map((e) => e.seq), [1, 2, 3, 4], 'the forgotten events no longer count towards maxTotal')
  t.equal(ev.record('gone', jarCleared).seq, 1, 'a profile created again under the name starts over')
  await ev.forget('never-seen')
})

t.test('forget removes the file, and a flush already queued does not bring it back', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sp-events-forget-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'events', 'p.jsonl')
  const ev = new SessionEvents(config({ persist: true, maxPerProfile: 2 }), dir, log)
  ev.record('p', jarCleared)
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.ok(existsSync(file), 'written')
  // Queued but not yet flushed (a compaction rewrite, too: 2 * maxPerProfile lines).
  for (let i = 0; i < 6; i++) ev.record('p', jarCleared)
  await ev.forget('p')
  t.notOk(existsSync(file), 'gone')
  await new Promise((resolve) => setTimeout(resolve, 50))
  await ev.close()
  t.notOk(existsSync(file), 'stays gone')
  const again = new SessionEvents(config({ persist: true }), dir, log)
  t.equal(again.list('p').lastSeq, 0, 'nothing is reloaded')
  await again.close()
})

t.test('forget waits for a write in progress', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sp-events-forget-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'events', 'p.jsonl')
  const ev = new SessionEvents(config({ persist: true }), dir, log)
  ev.record('p', jarCleared)
  // Let the flush start its write, then forget while it runs.
  await new Promise((resolve) => setImmediate(resolve))
  await ev.forget('p')
  t.notOk(existsSync(file))
  await ev.close()
  t.notOk(existsSync(file))
})
