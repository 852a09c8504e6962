/**
 * Hostile import files (round 3): a bad name, a profile twice, deep nesting
 * where a cookie belongs, and more cookies than the jar's limits. Each is
 * refused whole, before anything is written, naming the problem.
 */
import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { Cookie } from 'tough-cookie'
import { EXPORT_FORMAT, checkJarLimits, parseExport } from '../../../src/session/store/transfer.js'
import { cleanup, runCli, tempDir } from '../../helpers/proxy.js'

const doc = (profiles: unknown[]): string => JSON.stringify({ format: EXPORT_FORMAT, version: 1, exportedAt: new Date().toISOString(), profiles })
const cookie = (key: string, domain = 'a.example'): Record<string, unknown> => ({ key, value: 'v', domain, path: '/', creation: '2020-01-01T00:00:00.000Z' })

t.test('the file itself', async (t) => {
  t.throws(() => parseExport(doc([{ name: '../x', cookies: [] }])), /profiles\[0\]: invalid profile name "\.\.\/x"/)
  t.throws(() => parseExport(doc([{ name: 'a', cookies: [] }, { name: 'a', cookies: [] }])), /profiles\[1\]: profile "a" appears twice/)
  const deep = '['.repeat(100_000) + ']'.repeat(100_000)
  t.throws(() => parseExport(doc([{ name: 'a', cookies: [] }]).replace('"cookies":[]', `"cookies":[${deep}]`)), /not a cookie record/)
  t.throws(() => parseExport(doc([{ name: 'a', cookies: [{ ...cookie('k'), value: 'a\r\nb' }] }])), /profiles\[0\]\.cookies\[0\]: Cookie value cannot be sent/)
})

t.test('the jar limits: jar.maxCookiesPerProfile and jar.maxCookiesPerDomain', async (t) => {
  const many = new Map([['big', Array.from({ length: 11 }, (_, i) => Cookie.fromJSON(cookie(`k${i}`, `d${i}.example`))!)]])
  t.throws(() => checkJarLimits(many, { maxCookiesPerProfile: 10, maxCookiesPerDomain: 100 }), /profile "big": 11 cookies, more than jar\.maxCookiesPerProfile \(10\)/)
  const oneDomain = new Map([['dom', Array.from({ length: 4 }, (_, i) => Cookie.fromJSON(cookie(`k${i}`))!)]])
  t.throws(() => checkJarLimits(oneDomain, { maxCookiesPerProfile: 10, maxCookiesPerDomain: 3 }), /profile "dom": more than jar\.maxCookiesPerDomain \(3\) cookies for a\.example/)
  t.doesNotThrow(() => checkJarLimits(oneDomain, { maxCookiesPerProfile: 4, maxCookiesPerDomain: 4 }))
})

t.test('session-proxy import refuses an over-limit file and writes nothing', async (t) => {
  const dir = tempDir('sp-import-hostile-')
  t.teardown(() => cleanup(dir))
  const file = join(dir, 'export.json')
  writeFileSync(file, doc([{ name: 'small', cookies: [cookie('a')] }, { name: 'big', cookies: Array.from({ length: 200 }, (_, i) => cookie(`k${i}`)) }]))
  const data = join(dir, 'data')
  const r = runCli(['import', file, '--data-dir', data])
  t.equal(r.status, 2, r.stderr)
  t.match(r.stderr, /profile "big": more than jar\.maxCookiesPerDomain \(180\) cookies for a\.example/)
  t.notOk(existsSync(join(data, 'jars', 'small.jsonl')), 'not even the small profile was written')
})
