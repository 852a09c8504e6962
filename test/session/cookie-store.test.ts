/**
 * The store under the jar: it refuses what cannot be sent, clamps far
 * expiries, and keeps jar.maxCookiesPerDomain / maxCookiesPerProfile by
 * evicting the least recently used cookie in O(1) per cookie.
 */
import fc from 'fast-check'
import t from 'tap'
import { Cookie } from 'tough-cookie'
import type { CookieChange } from '../../src/session/cookie-store.js'
import { ObservedCookieStore } from '../../src/session/cookie-store.js'
import { MAX_EXPIRY_MS, sendableCookieProblem } from '../../src/session/sendable.js'
import { SessionJar, type RejectedCookie } from '../../src/session/session-jar.js'

const wide = { maxCookiesPerDomain: 1000, maxCookiesPerProfile: 1000 }
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/

function watch (jar: SessionJar): { changes: CookieChange[], rejected: RejectedCookie[] } {
  const seen = { changes: [] as CookieChange[], rejected: [] as RejectedCookie[] }
  jar.onChange = (c) => seen.changes.push(c)
  jar.onReject = (r) => seen.rejected.push(r)
  return seen
}

t.test('a Set-Cookie the jar cannot send is rejected where it enters; the jar keeps what it had', async (t) => {
  const jar = new SessionJar(wide)
  const seen = watch(jar)
  jar.capture(['sid=good; Path=/'], 'http://h.test/')
  // Values as a header decoder could hand them over: beyond latin1, DEL, a
  // control character tough-cookie lets through.
  for (const line of ['sid=\u20ac; Path=/', 'sid=x\u007fy; Path=/', 'n\u20ac=1', 'x\u007f=1']) {
    t.equal(jar.capture([line], 'http://h.test/'), false, JSON.stringify(line))
  }
  t.same(seen.rejected.map((r) => r.reason.replace(/: it .*/, '')), ['Cookie value cannot be sent', 'Cookie value cannot be sent', 'Cookie name cannot be sent', 'Cookie name cannot be sent'])
  t.equal(jar.cookieHeader('http://h.test/', 'k'), 'sid=good', 'the earlier cookie is still sent')
  t.equal(seen.changes.length, 1)
})

t.test('the value-only fast path refuses too', async (t) => {
  const jar = new SessionJar(wide)
  const seen = watch(jar)
  jar.capture(['tok=1; Path=/'], 'http://h.test/')
  jar.capture(['tok=2; Path=/'], 'http://h.test/')
  jar.capture(['tok=3\u0100; Path=/'], 'http://h.test/')
  t.equal(jar.cookieHeader('http://h.test/', 'k'), 'tok=2')
  t.equal(seen.rejected.length, 1)
  t.match(seen.rejected[0]!.reason, /^Cookie value cannot be sent: it contains "Ā" \(U\+0100\)/)
})

t.test('a huge Max-Age is stored clamped to 9999-12-31T23:59:59Z', async (t) => {
  const jar = new SessionJar(wide)
  const seen = watch(jar)
  jar.capture(['a=1; Max-Age=99999999999999', 'b=1; Max-Age=' + '9'.repeat(400), 'c=1; Max-Age=3600'], 'http://h.test/')
  const byName = new Map(jar.cookies().map((c) => [c.key, c]))
  t.equal(byName.get('a')!.expiryTime(), MAX_EXPIRY_MS)
  t.equal(byName.get('b')!.expiryTime(), MAX_EXPIRY_MS)
  t.equal(byName.get('c')!.maxAge, 3600)
  t.equal(seen.rejected.length, 0)
  t.doesNotThrow(() => JSON.stringify(jar.cookies().map((c) => c.toJSON())), 'every cookie serialises (the journal writes toJSON)')
  // The same line again is no change.
  t.equal(jar.capture(['a=1; Max-Age=99999999999999'], 'http://h.test/'), false)
})

t.test('restore refuses records the jar cannot hold and keeps the rest', async (t) => {
  const jar = new SessionJar(wide)
  const good = Cookie.fromJSON({ key: 'ok', value: '1', domain: 'h.test', path: '/' })!
  const crlf = Cookie.fromJSON({ key: 'bad', value: 'x\r\nInjected: 1', domain: 'h.test', path: '/' })!
  const refused = jar.restore([good, crlf])
  t.same(refused.map((r) => r.cookie.key), ['bad'])
  t.equal(jar.cookieHeader('http://h.test/', 'k'), 'ok=1')
})

t.test('replaceAll validates whole before changing anything', async (t) => {
  const jar = new SessionJar(wide)
  jar.capture(['keep=1'], 'http://h.test/')
  const ok = new Cookie({ key: 'n', value: '1', domain: 'h.test', path: '/' })
  const bad = new Cookie({ key: 'm', value: '\u20ac', domain: 'h.test', path: '/' })
  t.same(jar.replaceAll([ok, bad]).map((p) => p.index), [1])
  t.equal(jar.cookieHeader('http://h.test/', 'k1'), 'keep=1', 'unchanged')
  t.same(jar.replaceAll([ok]), [])
  t.equal(jar.cookieHeader('http://h.test/', 'k2'), 'n=1')
})

t.test('the store refuses directly offered cookies too (promise and callback forms)', async (t) => {
  const store = new ObservedCookieStore(wide)
  await t.rejects(store.putCookie(new Cookie({ key: 'a', value: 'x\u0000', domain: 'h.test', path: '/' })), /^Cookie value cannot be sent/)
  let err: Error | null = null
  store.putCookie(new Cookie({ key: 'a', value: '1', domain: null, path: '/' }), (e) => { err = e })
  t.match(err, /domain is missing/)
  t.equal(store.size, 0)
})

t.test('property: whatever Set-Cookie lines arrive, every cookie held is sendable and every Cookie header is a valid header value', async (t) => {
  const char = fc.oneof(
    fc.constantFrom('a', 'b', '=', ';', ' ', '\t', '"', ',', '\u0000', '\u0001', '\r', '\n', '\u007f', '\u00e9', '\u0080', '\u20ac', '\ud83d'),
    fc.string({ maxLength: 3 })
  )
  const part = fc.array(char, { maxLength: 8 }).map((a) => a.join(''))
  const attr = fc.constantFrom('', '; Path=/', '; Max-Age=99999999999999', '; Max-Age=0', '; Expires=Fri, 31 Dec 9999 23:59:59 GMT', '; Domain=h.test', '; Path=/a\u0001')
  const line = fc.tuple(part, part, attr).map(([n, v, a]) => `${n}=${v}${a}`)
  fc.assert(fc.property(fc.array(line, { maxLength: 12 }), (lines) => {
    const jar = new SessionJar({ maxCookiesPerDomain: 5, maxCookiesPerProfile: 8 })
    jar.capture(lines, 'http://h.test/a/b')
    for (const c of jar.cookies()) {
      if (sendableCookieProblem(c) !== null) return false
      JSON.stringify(c.toJSON())
    }
    for (const url of ['http://h.test/', 'http://h.test/a/b', 'http://x.h.test/']) {
      if (!HEADER_VALUE.test(jar.cookieHeader(url, url))) return false
    }
    return jar.size <= 5
  }), { seed: 9, numRuns: 400 })
  t.pass('400 runs held')
})

function cookie (key: string, domain: string, at: number): Cookie {
  const when = new Date(at)
  return new Cookie({ key, value: key, domain, path: '/', creation: when, lastAccessed: when })
}

t.test('eviction order: least recently used first, per domain and per profile, with cookie.evicted changes', async (t) => {
  const store = new ObservedCookieStore({ maxCookiesPerDomain: 3, maxCookiesPerProfile: 5 })
  const evicted: string[] = []
  store.onChange = (c) => { if (c.type === 'delete' && c.reason === 'evicted') evicted.push(`${c.cookie.domain}/${c.cookie.key}`) }
  const t0 = Date.now() - 100_000
  for (const [i, k] of ['a1', 'a2', 'a3'].entries()) store.putCookie(cookie(k, 'a.test', t0 + i), () => {})
  // a1 is used again (an update keeps it, tough-cookie sets lastAccessed).
  store.putCookie(cookie('a1', 'a.test', t0 + 10), () => {})
  store.putCookie(cookie('a4', 'a.test', t0 + 11), () => {})
  t.same(evicted, ['a.test/a2'], 'the per-domain cap takes the least recently used of the domain')
  for (const [i, k] of ['b1', 'b2', 'b3'].entries()) store.putCookie(cookie(k, 'b.test', t0 + 20 + i), () => {})
  t.same(evicted, ['a.test/a2', 'a.test/a3'], 'the per-profile cap takes the least recently used anywhere')
  t.same(store.evictionOrder().map((c) => c.key), ['a1', 'a4', 'b1', 'b2', 'b3'])
  t.equal(store.size, 5)

  // A read that tough-cookie did behind the store's back (lastAccessed moved)
  // is noticed when that cookie comes up for eviction.
  store.allCookies().find((c) => c.key === 'a1')!.lastAccessed = new Date(t0 + 50)
  store.putCookie(cookie('c1', 'c.test', t0 + 60), () => {})
  t.same(evicted.slice(2), ['a.test/a4'], 'a1 was read since, so a4 goes')
  store.removeAllCookies(() => {})
  t.equal(store.size, 0)
  t.same(store.evictionOrder(), [])
})

t.test('eviction order through the jar: a cookie sent in a Cookie header counts as used', async (t) => {
  const jar = new SessionJar({ maxCookiesPerDomain: 100, maxCookiesPerProfile: 3 })
  const seen = watch(jar)
  jar.capture(['old=1'], 'http://one.test/')
  await new Promise((resolve) => setTimeout(resolve, 3))
  jar.capture(['mid=1'], 'http://two.test/')
  await new Promise((resolve) => setTimeout(resolve, 3))
  jar.capture(['new=1'], 'http://three.test/')
  await new Promise((resolve) => setTimeout(resolve, 3))
  t.equal(jar.cookieHeader('http://one.test/', 'one'), 'old=1')
  jar.capture(['extra=1'], 'http://four.test/')
  const evicted = seen.changes.flatMap((c) => c.type === 'delete' && c.reason === 'evicted' ? [c.cookie.key] : [])
  t.same(evicted, ['mid'], 'old was sent since, so mid is the least recently used')
})

t.test('caps cost O(1) per cookie: eviction looks at a bounded number of cookies, however big the jar', async (t) => {
  // Counts reads of lastAccessed, the key LRU eviction orders by. Rescanning
  // the jar per added cookie (the old way) reads it for every held cookie.
  const run = (n: number, cap: number): number => {
    const store = new ObservedCookieStore({ maxCookiesPerDomain: cap, maxCookiesPerProfile: cap })
    let reads = 0
    const t0 = Date.now() - 1_000_000
    for (let i = 0; i < n; i++) {
      const c = cookie(`k${i}`, `d${i % 7}.test`, t0 + i)
      const at = c.lastAccessed
      Object.defineProperty(c, 'lastAccessed', { get: () => { reads++; return at }, set: () => {}, enumerable: true, configurable: true })
      store.putCookie(c, () => {})
    }
    t.equal(store.size, Math.min(n, cap))
    return reads
  }
  const small = run(2_000, 500)
  const large = run(20_000, 5_000)
  t.ok(large <= 10 * 20_000, `20,000 cookies over a cap of 5,000 read lastAccessed ${large} times (at most 10 per cookie)`)
  t.ok(large <= 12 * small, `ten times the cookies and the cap cost about ten times the work (${small} -> ${large})`)
})
