import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import t from 'tap'
import type { EventsConfig } from '../../src/contracts/settings.js'
import { SessionEvents } from '../../src/observe/events.js'

const log = pino({ level: 'silent' })
const config = (over: Partial<EventsConfig> = {}): EventsConfig => ({ maxPerProfile: 5, maxTotal: 1000, persist: false, sessionCookies: [], fixationWindowMs: 0, ...over })
const jarCleared = { type: 'jar.cleared', requestId: null } as const

t.test('ring buffer: bounded, seq per profile, paging', async (t) => {
  const ev = new SessionEvents(config(), null, log)
  for (let i = 0; i < 12; i++) ev.record('a', jarCleared)
  ev.record('b', jarCleared)
  const a = ev.list('a')
  t.same(a.events.map((e) => e.seq), [8, 9, 10, 11, 12])
  t.equal(a.firstSeq, 8)
  t.same(ev.list('b').events.map((e) => e.seq), [1], 'seq is per profile')
  t.same(ev.list('a', { since: 2, limit: 2 }).events.map((e) => e.seq), [8, 9], 'a since older than the ring starts at its oldest')
  t.same(ev.list('a', { since: 10 }).events.map((e) => e.seq), [11, 12])
  t.same(ev.list('none').events, [])
})

t.test('listeners: per profile and all; a throwing listener does not break recording', async (t) => {
  const ev = new SessionEvents(config(), null, log)
  const seen: string[] = []
  const off = ev.subscribe('a', (e) => seen.push(`a:${e.seq}`))
  ev.subscribe(null, (e) => seen.push(`all:${e.profile}`))
  ev.subscribe(null, () => { throw new Error('boom') })
  ev.record('a', jarCleared)
  ev.record('b', jarCleared)
  off()
  ev.record('a', jarCleared)
  t.same(seen, ['a:1', 'all:a', 'all:b', 'all:a'])
})

t.test('persistence: JSONL appended off the request path, reloaded, compacted', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sp-events-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const ev = new SessionEvents(config({ persist: true, maxPerProfile: 3 }), dir, log)
  for (let i = 0; i < 7; i++) ev.record('p', jarCleared)
  await ev.close()
  const lines = readFileSync(join(dir, 'events', 'p.jsonl'), 'utf8').trim().split('\n')
  t.ok(lines.length <= 6, `the file stays bounded (${lines.length} lines for maxPerProfile 3)`)
  const again = new SessionEvents(config({ persist: true, maxPerProfile: 3 }), dir, log)
  t.same(again.list('p').events.map((e) => e.seq), [5, 6, 7])
  t.equal(again.record('p', jarCleared).seq, 8, 'seq continues after a restart')
  await again.close()
})

t.test('events.maxTotal caps the events held across all profiles, oldest first', async (t) => {
  const ev = new SessionEvents(config({ maxPerProfile: 5, maxTotal: 12 }), null, log)
  for (let round = 0; round < 4; round++) {
    for (const p of ['a', 'b', 'c', 'd']) ev.record(p, { type: 'jar.cleared', requestId: round })
  }
  const held = ['a', 'b', 'c', 'd'].map((p) => ev.list(p).events.length)
  t.same(held, [3, 3, 3, 3], '16 recorded, 12 kept: the first round went')
  t.same(ev.list('a').events.map((e) => e.requestId), [1, 2, 3])
  t.equal(ev.list('a').firstSeq, 2, 'firstSeq shows what was dropped')
  // One busy profile overwriting its own ring never loses the others' events.
  for (let i = 0; i < 10000; i++) ev.record('busy', { type: 'jar.cleared', requestId: i })
  t.equal(ev.list('busy').events.length, 5)
  t.ok(['a', 'b', 'c', 'd'].map((p) => ev.list(p).events.length).reduce((x, y) => x + y) <= 7, 'the total stays within 12')
})
