import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
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

const waitFor = async (cond: () => boolean, what: string): Promise<void> => {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((resolve) => setTimeout(resolve, 10))
  if (!cond()) throw new Error(`timed out waiting for ${what}`)
}

t.test('a failed write is reported, retried with a full rewrite, and recovery is reported', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sp-journal-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const jars = join(dir, 'jars')
  // The directory is a file: every open fails (ENOTDIR), as on a disk gone read-only.
  writeFileSync(jars, 'not a directory')
  const state = ['{"n":1}', '{"n":2}']
  const errors: string[] = []
  const outcomes: Array<string | null> = []
  let recovered = 0
  const j = new Journal({
    path: join(jars, 'a.jsonl'),
    snapshot: () => state.map((l) => l + '\n').join(''),
    liveRecords: () => state.length,
    onError: (err) => errors.push((err as NodeJS.ErrnoException).code ?? err.message),
    onWritten: (err) => outcomes.push(err === null ? null : (err as NodeJS.ErrnoException).code ?? 'error'),
    onRecovered: () => { recovered++ },
    retryBaseMs: 20,
    retryMaxMs: 40
  })
  await j.append('{"n":1}')
  t.equal((j.lastError as NodeJS.ErrnoException | null)?.code, 'ENOTDIR', 'the batch settles with the error recorded')
  t.same(outcomes, ['ENOTDIR'], 'onWritten saw the failure before the caller resumed')
  await waitFor(() => errors.length >= 3, 'retries')
  t.ok(j.failures >= 3, 'retries keep failing while the disk does')
  t.equal(recovered, 0)
  // The disk comes back.
  rmSync(jars)
  mkdirSync(jars)
  await waitFor(() => recovered === 1, 'recovery')
  t.equal(j.lastError, null)
  t.equal(j.failures, 0)
  t.equal(outcomes[outcomes.length - 1], null)
  t.equal(readFileSync(join(jars, 'a.jsonl'), 'utf8'), '{"n":1}\n{"n":2}\n', 'the rewrite carries the full state, the failed change included')
  t.same(readdirSync(jars), ['a.jsonl'], 'no temporary file left behind')
  await j.append('{"n":3}')
  t.equal(readFileSync(join(jars, 'a.jsonl'), 'utf8'), '{"n":1}\n{"n":2}\n{"n":3}\n', 'appends go on after recovery')
  await j.close()
})

t.test('a write refused on an open descriptor (disk full) is caught up by the rewrite', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sp-journal-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, 'a.jsonl')
  // /dev/full opens fine and refuses every write with ENOSPC.
  symlinkSync('/dev/full', path)
  const errors: string[] = []
  const j = new Journal({ path, snapshot: () => '{"full":true}\n', liveRecords: () => 1, onError: (err) => errors.push((err as NodeJS.ErrnoException).code ?? ''), retryBaseMs: 10 })
  // Past the compaction threshold the first write would be a rewrite: keep it an append.
  await j.append('{"full":true}')
  t.same(errors.slice(0, 1), ['ENOSPC'])
  await waitFor(() => j.lastError === null, 'the rewrite')
  t.equal(readFileSync(path, 'utf8'), '{"full":true}\n')
  await j.close()
})

t.test('a compaction that fails leaves no temporary file; close tries once more', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sp-journal-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, 'a.jsonl')
  mkdirSync(path) // rename onto a directory fails after the temporary file was written
  const errors: string[] = []
  let snapshots = 0
  const j = new Journal({ path, snapshot: () => { snapshots++; return '{"a":1}\n' }, liveRecords: () => 1, onError: (err) => errors.push((err as NodeJS.ErrnoException).code ?? ''), retryBaseMs: 60_000, compactFirst: true })
  await j.append('{"a":1}')
  t.ok(errors.length === 1 && j.lastError !== null, `the rewrite failed (${errors.join()})`)
  t.same(readdirSync(dir), ['a.jsonl'], 'the temporary file was removed')
  rmSync(path, { recursive: true })
  await j.close()
  t.equal(snapshots, 2, 'close made one last full rewrite')
  t.equal(j.lastError, null)
  t.equal(readFileSync(path, 'utf8'), '{"a":1}\n')
  await j.append('{"late":1}')
  t.match(j.lastError?.message, /closed/, 'a closed journal refuses, loudly')
})

t.test('suspend gives the descriptor back and keeps the journal usable; not while the file lags behind', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sp-journal-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const before = openFds()
  const j = new Journal({ path: join(dir, 'a.jsonl'), snapshot: () => '', liveRecords: () => 1000, onError: () => {}, retryBaseMs: 60_000 })
  await j.append('{"a":1}')
  t.equal(openFds() - before, 1, 'one descriptor while active')
  t.equal(await j.suspend(), true)
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal(openFds() - before, 0, 'none once suspended')
  await j.append('{"a":2}')
  t.equal(readFileSync(join(dir, 'a.jsonl'), 'utf8'), '{"a":1}\n{"a":2}\n')
  rmSync(dir, { recursive: true })
  writeFileSync(dir, '')
  await j.suspend()
  await j.append('{"a":3}')
  t.not(j.lastError, null)
  t.equal(await j.suspend(), false, 'a journal whose last write failed is not suspended')
  rmSync(dir)
  await j.close()
})
