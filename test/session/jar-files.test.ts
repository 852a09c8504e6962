import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { CookieJarStore, replayJournal } from '../../src/session/jar-files.js'
import { MAX_EXPIRY_MS } from '../../src/session/sendable.js'

const record = (cookie: Record<string, unknown>): string => JSON.stringify({ op: 'set', cookie: { domain: 'example.test', path: '/', hostOnly: true, creation: '2026-01-01T00:00:00.000Z', ...cookie } })

t.test('a UTF-8 byte order mark does not cost the first record', async (t) => {
  const text = '\uFEFF' + record({ key: 'first', value: '1' }) + '\n' + record({ key: 'second', value: '2' }) + '\n'
  const { cookies, bad } = replayJournal(text)
  t.same(bad, [])
  t.same(cookies.map((c) => c.key).sort(), ['first', 'second'])
})

t.test('Windows line endings load too', async (t) => {
  const { cookies, bad } = replayJournal(record({ key: 'a', value: '1' }) + '\r\n' + record({ key: 'b', value: '2' }) + '\r\n')
  t.same(bad, [])
  t.equal(cookies.length, 2)
})

t.test('records a Cookie header cannot carry are rejected one by one, the rest loads', async (t) => {
  const rows = [
    record({ key: 'good', value: 'v1' }),
    record({ key: 'crlf', value: 'a\r\nX-Injected: 1' }),
    record({ key: 'nul', value: 'a\u0000b' }),
    record({ key: 'tab', value: 'a\tb' }),
    record({ key: 'del', value: 'a\u007Fb' }),
    record({ key: 'euro', value: '€' }),
    record({ key: 'semi', value: 'a; b=c' }),
    record({ key: 'bad name', value: '1' }),
    record({ key: 'colon:name', value: '1' }),
    record({ key: 'far', value: '1', expires: '+100000-01-01T00:00:00.000Z' }),
    record({ key: 'farMaxAge', value: '1', maxAge: 99999999999999 }),
    record({ key: 'ctlpath', value: '1', path: '/a\nb' }),
    record({ key: 'good2', value: 'é latin1 is fine', expires: '9999-12-31T00:00:00.000Z' }),
    record({ key: 'session', value: 's' })
  ]
  const { cookies, bad } = replayJournal(rows.join('\n') + '\n')
  // The rules of src/session/sendable.ts, as for Set-Cookie and cookies.txt:
  // names need not be tokens (browsers send them), far expiries are clamped.
  t.same(cookies.map((c) => c.key).sort(), ['bad name', 'colon:name', 'far', 'farMaxAge', 'good', 'good2', 'session'])
  t.same(bad.map((b) => b.line), [2, 3, 4, 5, 6, 7, 12])
  t.match(bad[0]!.error, /control character/)
  t.match(bad[4]!.error, /not a single byte/)
  t.match(bad[6]!.error, /path/)
  for (const key of ['far', 'farMaxAge']) t.equal(cookies.find((c) => c.key === key)!.expiryTime(), MAX_EXPIRY_MS, `${key}: expiry clamped to the end of year 9999`)
})

t.test('loading a file with rejected records reports it like a damaged file and keeps the original aside', async (t) => {
  const dataDir = mkdtempSync(join(tmpdir(), 'sp-jarfiles-'))
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }))
  const store = new CookieJarStore(dataDir)
  store.init()
  t.teardown(() => store.release())
  const original = '\uFEFF' + record({ key: 'kept', value: '1' }) + '\n' + record({ key: 'crlf', value: 'x\r\ny' }) + '\n'
  writeFileSync(store.fileOf('p'), original)
  const loaded = store.load('p')
  t.same(loaded.cookies.map((c) => c.key), ['kept'])
  t.ok(loaded.problem !== null)
  t.same(loaded.problem!.badLines, [2])
  t.ok(existsSync(loaded.problem!.keptAs))
  t.equal(readFileSync(loaded.problem!.keptAs, 'utf8'), original)
})
