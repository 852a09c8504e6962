/** The export document: creation order, and an import validated whole with the first problem named. */
import t from 'tap'
import { Cookie } from 'tough-cookie'
import { EXPORT_FORMAT, exportDocument, parseExport } from '../../../src/session/store/transfer.js'
import { cookieField, parseCookieField } from '../../../src/session/store/jar-store.js'

const cookie = (key: string, creation: number, extra: Partial<Cookie> = {}): Cookie =>
  new Cookie({ key, value: 'v', domain: 'example.com', path: '/', creation: new Date(creation), ...extra })

t.test('export: profiles by name, cookies oldest first, every attribute', async (t) => {
  const doc = exportDocument(new Map([['b', [cookie('late', 2000), cookie('early', 1000, { secure: true, httpOnly: true, sameSite: 'strict' })]], ['a', []]]))
  t.equal(doc.format, EXPORT_FORMAT)
  t.same(doc.profiles.map((p) => p.name), ['a', 'b'])
  t.same(doc.profiles[1]!.cookies.map((c) => (c as { key: string }).key), ['early', 'late'])
  t.match(doc.profiles[1]!.cookies[0], { secure: true, httpOnly: true, sameSite: 'strict' })
  const back = parseExport(JSON.stringify(doc))
  t.same(back.get('b')!.map((c) => c.toJSON()), doc.profiles[1]!.cookies, 'parses back to the same records')
})

t.test('import refuses a bad file whole, naming the first problem', async (t) => {
  const ok = (cookies: unknown[], name = 'p'): string => JSON.stringify({ format: EXPORT_FORMAT, version: 1, profiles: [{ name, cookies }] })
  const good = cookie('a', 1).toJSON()
  t.throws(() => parseExport('{'), /not JSON/)
  t.throws(() => parseExport('{"format":"other"}'), /not a session-proxy export/)
  t.throws(() => parseExport(JSON.stringify({ format: EXPORT_FORMAT, version: 2, profiles: [] })), /unsupported export version 2/)
  t.throws(() => parseExport(ok([good], '../etc')), /profiles\[0\]: invalid profile name/)
  t.throws(() => parseExport(ok([{ key: 'x' }])), /profiles\[0\]\.cookies\[0\]: not a cookie record/)
  t.throws(() => parseExport(ok([good, good])), /cookies\[1\]: a second cookie "a"/)
  t.throws(() => parseExport(ok([{ ...good, value: 'a\nb' }])), /cookies\[0\]/)
  t.throws(() => parseExport(JSON.stringify({ format: EXPORT_FORMAT, version: 1, profiles: [{ name: 'p', cookies: [] }, { name: 'p', cookies: [] }] })), /appears twice/)
  t.equal(parseExport(ok([good])).get('p')!.length, 1)
})

t.test('a cookie identity survives any name', async (t) => {
  const f = cookieField('example.com', '/a;b', 'n"m')
  t.same(parseCookieField(f), ['example.com', '/a;b', 'n"m'])
  t.equal(parseCookieField('nope'), null)
  t.equal(parseCookieField('[1,2,3]'), null)
})
