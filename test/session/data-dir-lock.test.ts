import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { hostname, tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { DataDirLock, DataDirLockedError, LOCK_FILE, LOCK_STALE_MS } from '../../src/session/data-dir-lock.js'

const dir = (t: Test): string => {
  const d = mkdtempSync(join(tmpdir(), 'sp-lock-'))
  t.teardown(() => rmSync(d, { recursive: true, force: true }))
  return d
}

/** The pid of a process that has exited (and been reaped). */
const deadPid = (): number => Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout)

const writeLock = (d: string, content: Record<string, unknown>, ageMs = 0): void => {
  const file = join(d, LOCK_FILE)
  writeFileSync(file, JSON.stringify(content))
  const when = new Date(Date.now() - ageMs)
  utimesSync(file, when, when)
}

t.test('a second holder is refused with the holder pid; release lets it in', async (t) => {
  const d = dir(t)
  const a = new DataDirLock(d)
  a.acquire()
  const content = JSON.parse(readFileSync(join(d, LOCK_FILE), 'utf8')) as { pid: number, host: string }
  t.equal(content.pid, process.pid)
  t.equal(content.host, hostname())
  const b = new DataDirLock(d)
  t.throws(() => b.acquire(), new RegExp(`pid ${process.pid} `))
  let refused: unknown
  try { b.acquire() } catch (err) { refused = err }
  t.ok(refused instanceof DataDirLockedError, 'a typed error')
  t.equal((refused as DataDirLockedError).holder.pid, process.pid)
  a.release()
  t.notOk(existsSync(join(d, LOCK_FILE)), 'release removes the file')
  b.acquire()
  b.release()
  b.release()
})

t.test('a lock whose holder is dead is taken over', async (t) => {
  const d = dir(t)
  writeLock(d, { pid: deadPid(), host: hostname(), procStart: null, since: 'x' })
  const lock = new DataDirLock(d)
  lock.acquire()
  t.equal((JSON.parse(readFileSync(join(d, LOCK_FILE), 'utf8')) as { pid: number }).pid, process.pid)
  lock.release()
})

t.test('our own pid in a lock this process does not hold is stale (a restarted container reuses pid 1)', async (t) => {
  const d = dir(t)
  writeLock(d, { pid: process.pid, host: hostname(), procStart: 'other', since: 'x' })
  const lock = new DataDirLock(d)
  lock.acquire()
  lock.release()
})

t.test('a live pid with another start time is a reused pid: stale', async (t) => {
  const d = dir(t)
  writeLock(d, { pid: process.ppid, host: hostname(), procStart: '1', since: 'x' })
  const lock = new DataDirLock(d)
  lock.acquire()
  lock.release()
})

t.test('a live holder with the same start time is refused', async (t) => {
  const d = dir(t)
  const stat = readFileSync(`/proc/${process.ppid}/stat`, 'utf8')
  const procStart = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
  writeLock(d, { pid: process.ppid, host: hostname(), procStart, since: 'x' })
  t.throws(() => new DataDirLock(d).acquire(), new RegExp(`pid ${process.ppid} on ${hostname()}`))
})

t.test('another host: a fresh heartbeat is respected, an old one is stale', async (t) => {
  const d = dir(t)
  writeLock(d, { pid: 1, host: 'other-host.example', procStart: null, since: 'x' })
  t.throws(() => new DataDirLock(d).acquire(), /pid 1 on other-host.example/)
  writeLock(d, { pid: 1, host: 'other-host.example', procStart: null, since: 'x' }, LOCK_STALE_MS + 5000)
  const lock = new DataDirLock(d)
  lock.acquire()
  lock.release()
})

t.test('an unreadable lock file is judged by its age', async (t) => {
  const d = dir(t)
  writeFileSync(join(d, LOCK_FILE), '{"pi')
  t.throws(() => new DataDirLock(d).acquire(), /unreadable/)
  const old = new Date(Date.now() - LOCK_STALE_MS - 5000)
  utimesSync(join(d, LOCK_FILE), old, old)
  const lock = new DataDirLock(d)
  lock.acquire()
  lock.release()
})

t.test('a data dir that cannot hold the lock fails with the OS error', async (t) => {
  const d = dir(t)
  t.throws(() => new DataDirLock(join(d, 'missing')).acquire(), { code: 'ENOENT' })
})
