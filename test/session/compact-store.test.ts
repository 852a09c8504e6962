/**
 * The compact store (issue 12): cookies are held as records of strings and
 * numbers, with no tough-cookie Cookie or Date objects kept between
 * lookups, and still read back as the Cookie objects tough-cookie's own
 * MemoryCookieStore holds.
 */
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import t from 'tap'
import { Cookie, CookieJar, MemoryCookieStore } from 'tough-cookie'
import { ObservedCookieStore, recordToJSON, type CookieChange } from '../../src/session/cookie-store.js'
import { SessionJar } from '../../src/session/session-jar.js'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

const limits = { maxCookiesPerDomain: 1000, maxCookiesPerProfile: 3000 }
const LINES = [
  'a=1; Path=/',
  'b=2; Path=/app; HttpOnly; Secure; SameSite=Lax',
  'c=3; Domain=example.test; Max-Age=3600',
  'd=4; Expires=Wed, 21 Oct 2037 07:28:00 GMT; Path=/',
  'e=5; Path=/; SameSite=Strict; Priority=High'
]

t.test('records hold numbers and shared strings, never Cookie or Date objects', async (t) => {
  const jar = new SessionJar(limits)
  jar.capture(LINES, 'https://www.example.test/app/page')
  jar.cookieHeader('https://www.example.test/app/page', 'k')
  const records = jar.store.records()
  t.equal(records.length, LINES.length)
  for (const r of records) {
    for (const [field, v] of Object.entries(r)) {
      t.notOk(v instanceof Date, `${r.key}.${field} is not a Date`)
      t.notOk(v instanceof Cookie, `${r.key}.${field} is not a Cookie`)
    }
    t.ok(r.creation === null || typeof r.creation === 'number')
    t.ok(r.lastAccessed === null || typeof r.lastAccessed === 'number')
  }
  // The domain string is shared by every record of it, across jars.
  const other = new SessionJar(limits)
  other.capture(['z=9; Path=/'], 'https://www.example.test/')
  const byName = new Map(records.map((r) => [r.key, r]))
  t.equal(byName.get('a')!.domain, other.store.records()[0]!.domain)
})

t.test('what the store reads back is what MemoryCookieStore holds, attribute for attribute', async (t) => {
  const url = 'https://www.example.test/app/page'
  const ours = new SessionJar(limits)
  const theirs = new CookieJar(new MemoryCookieStore(), { rejectPublicSuffixes: true, allowSecureOnLocal: false, prefixSecurity: 'strict', allowSpecialUseDomain: true })
  for (const line of LINES) {
    ours.capture([line], url)
    theirs.setCookieSync(line, url)
  }
  const json = (cs: Cookie[]): unknown[] => cs.map((c) => ({ ...c.toJSON(), creationIndex: undefined, creation: undefined, lastAccessed: undefined })).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)))
  t.same(json(ours.store.allCookies()), json(await theirs.store.getAllCookies()))
  t.equal(ours.cookieHeader(url, 'k'), theirs.getCookieStringSync(url))
  // Ordering keeps creation and creationIndex: the same header through tough-cookie's sort.
  t.equal(ours.jar.getCookieStringSync(url), theirs.getCookieStringSync(url))
})

t.test('a change serialises straight from the record, exactly as Cookie.toJSON does', async (t) => {
  const jar = new SessionJar(limits)
  const changes: CookieChange[] = []
  jar.onChange = (c) => changes.push(c)
  jar.capture([...LINES, 'f=6; Path=/; Max-Age=0', 'g=7; Path=/; Max-Age=60'], 'https://www.example.test/app/page')
  jar.capture(['g=8; Path=/; Max-Age=60'], 'https://www.example.test/app/page')
  jar.store.putCookie(new Cookie({ key: 'h', value: 'v', domain: 'x.test', path: '/', hostOnly: null, pathIsDefault: null, expires: new Date(Date.now() + 1000) }), () => {})
  for (const r of jar.store.records()) {
    t.equal(JSON.stringify(recordToJSON(r)), JSON.stringify(Cookie.prototype.toJSON.call(jar.store.materialise(r))), r.key)
  }
  for (const c of changes) {
    if (c.type === 'set') t.equal(JSON.stringify(c.cookie.toJSON()), JSON.stringify(Cookie.prototype.toJSON.call(c.cookie)), `change of ${c.cookie.key}`)
  }
  t.ok(changes.length >= LINES.length + 2)
})

t.test('a Cookie built by the store reports its use back (tough-cookie sets lastAccessed on what it returns)', async (t) => {
  const store = new ObservedCookieStore(limits)
  const at = Date.now() - 60_000
  for (const k of ['x', 'y']) store.putCookie(new Cookie({ key: k, value: k, domain: 'h.test', path: '/', creation: new Date(at), lastAccessed: new Date(at) }), () => {})
  const built = store.find('h.test', '/', 'x')!
  t.equal((built.lastAccessed as Date).getTime(), at)
  built.lastAccessed = new Date(at + 1000)
  t.equal(store.record('h.test', '/', 'x')!.lastAccessed, at + 1000, 'the record took the new time')
  t.same(store.evictionOrder().map((c) => c.key), ['y', 'x'], 'and the use moved it last')
  // A stale copy (the cookie replaced since) changes nothing.
  store.putCookie(new Cookie({ key: 'x', value: 'new', domain: 'h.test', path: '/', creation: new Date(at), lastAccessed: new Date(at + 2000) }), () => {})
  built.lastAccessed = new Date(at + 5000)
  t.equal(store.record('h.test', '/', 'x')!.lastAccessed, at + 2000)
})

t.test('2,000 jars of 20 cookies take a fraction of what tough-cookie objects took (about 1,100 B a cookie)', async (t) => {
  const keep: SessionJar[] = []
  gc()
  const before = process.memoryUsage().heapUsed
  for (let p = 0; p < 2000; p++) {
    const jar = new SessionJar(limits)
    const lines: string[] = []
    for (let i = 0; i < 20; i++) lines.push(`s${i}=${p.toString(16).padStart(8, '0')}${i.toString(16).padStart(24, '0')}; Path=/; Max-Age=86400`)
    jar.capture(lines, 'http://127.0.0.1:8080/seed')
    jar.cookieHeader('http://127.0.0.1:8080/', 'k')
    keep.push(jar)
  }
  gc()
  const perCookie = (process.memoryUsage().heapUsed - before) / (2000 * 20)
  t.equal(keep.length, 2000)
  t.ok(perCookie < 600, `${Math.round(perCookie)} B of heap per cookie, jar overhead included`)
})
