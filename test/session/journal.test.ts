import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { HandleBudget, Journal } from '../../src/session/journal.js'

const openFds = (): number => readdirSync('/proc/self/fd').length

t.test('group commit: records appended together arrive in order, each promise after its write', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sp-journal-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const j = new Journal({ path: join(dir, 'a.jsonl'), snapshot: () => '', liveRecords: () => 1000, onError: (err) => { throw err } })
  const writes = Array.from({ length: 100 }, async (_, i) => { await j.append(JSON.stringify({ i })); return readFileSync(join(dir, 'a.jsonl'), 'utf8') })
  const seen = await Promise.all(writes)
  seen.forEach((text, i) => t.ok(text.includes(`{"i":${i}}`), `record ${i} was in the file when its promise settled`))
  t.same(readFileSync(join(dir, 'a.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { i: number }).i), [...Array(100).keys()])
  await j.close()
})

t.test('a handle budget bounds open files across many journals without losing a record', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sp-journal-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const budget = new HandleBudget(8)
  const before = openFds()
  const journals = Array.from({ length: 200 }, (_, n) => new Journal({ path: join(dir, `p${n}.jsonl`), snapshot: () => '', liveRecords: () => 1000, onError: (err) => { throw err }, budget }))
  let peak = 0
  // 20 writers at a time, as 20 concurrent clients would cause.
  for (let round = 0; round < 3; round++) {
    const queue = journals.map((j, n) => [j, n] as const)
    await Promise.all(Array.from({ length: 20 }, async () => {
      for (let item = queue.shift(); item !== undefined; item = queue.shift()) {
        await item[0].append(`{"n":${item[1]},"round":${round}}`)
        peak = Math.max(peak, openFds() - before)
      }
    }))
  }
  t.ok(peak <= 8 + 20 + 2, `open files stayed within the budget plus the writes in flight (peak ${peak})`)
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.ok(openFds() - before <= 8, `idle, at most the budget is open (${openFds() - before})`)
  await Promise.all(journals.map(async (j) => await j.close()))
  for (let n = 0; n < 200; n++) {
    t.equal(readFileSync(join(dir, `p${n}.jsonl`), 'utf8'), [0, 1, 2].map((r) => `{"n":${n},"round":${r}}\n`).join(''), `p${n} has all three records`)
  }
})
