/**
 * The jar's shortcuts (repeated lines skipped, value-only updates applied to
 * a copy of the stored cookie, cached Cookie headers) must never change what
 * tough-cookie alone would do: the same Set-Cookie sequences go to both, and
 * every Cookie header and stored attribute must agree.
 */
import t from 'tap'
import { CookieJar, MemoryCookieStore } from 'tough-cookie'
import { SessionJar } from '../../src/session/session-jar.js'

const limits = { maxCookiesPerDomain: 1000, maxCookiesPerProfile: 1000 }
const plainJar = (): CookieJar => new CookieJar(new MemoryCookieStore(), { rejectPublicSuffixes: true, allowSecureOnLocal: false, prefixSecurity: 'strict', allowSpecialUseDomain: true })

const urls = ['http://app.example.test/', 'http://app.example.test/app/x', 'https://app.example.test/app/', 'http://api.example.test/v1']
const lines = [
  'sid=a1; Path=/',
  'sid=a2; Path=/',
  'sid=a2; Path=/',
  'sid=; Path=/; Max-Age=0',
  'sid=a3; Path=/',
  'sid=a4; Path=/; HttpOnly',
  'sid=a5; Path=/',
  'sid=; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT',
  'sid=a6; Path=/',
  'XSRF-TOKEN=t1; Path=/',
  'XSRF-TOKEN=; Path=/; Max-Age=0',
  'XSRF-TOKEN=t2; Path=/',
  'XSRF-TOKEN=; Path=/; Max-Age=0',
  'XSRF-TOKEN=t3; Path=/',
  'ctx=1; Path=/app',
  'ctx=2; Path=/app',
  'ctx=3; Path=/app; Secure',
  'ctx=4; Path=/app',
  'wide=w1; Domain=example.test; Path=/',
  'wide=w2; Domain=example.test; Path=/',
  'wide=w3; Path=/',
  'wide=w4; Domain=example.test; Path=/',
  'ttl=1; Max-Age=3600; Path=/',
  'ttl=2; Max-Age=3600; Path=/',
  'ttl=3; Max-Age=60; Path=/',
  'gone=x; Max-Age=-1',
  'bad\u0001=x; Path=/',
  'nv; Path=/',
  '__Host-id=h1; Path=/; Secure',
  '__Host-id=h2; Path=/; Secure'
]

t.test('the same lines give the same jar as tough-cookie alone, step by step', async (t) => {
  // Several orders: as listed, reversed, and interleaved, each from two URLs.
  const orders = [lines, [...lines].reverse(), lines.flatMap((l, i) => [l, lines[(i * 7) % lines.length]!])]
  for (const [o, order] of orders.entries()) {
    const ours = new SessionJar(limits)
    const plain = plainJar()
    for (const [i, line] of order.entries()) {
      for (const from of ['https://app.example.test/app/login', 'http://app.example.test/']) {
        ours.capture([line], from)
        try { plain.setCookieSync(line, from, { ignoreError: true }) } catch {}
        for (const url of urls) {
          t.equal(ours.cookieHeader(url, url), plain.getCookieStringSync(url), `order ${o}, step ${i} (${line} from ${from}): ${url}`)
        }
      }
    }
  }
})

t.test('a value-only update keeps every attribute and the order', async (t) => {
  const ours = new SessionJar(limits)
  ours.capture(['a=1; Path=/; HttpOnly; Max-Age=3600', 'b=1; Path=/'], 'http://h.test/')
  const before = ours.store.allCookies().find((c) => c.key === 'a')!
  ours.capture(['a=2; Path=/; HttpOnly; Max-Age=3600'], 'http://h.test/')
  const after = ours.store.allCookies().find((c) => c.key === 'a')!
  t.equal(after.value, '2')
  t.not(after, before, 'a new object, so the change is observed')
  // Max-Age counts from the last access (tough-cookie), which the update moves
  // to now: the lifetime is kept, the instant moves with it.
  const lifetime = (c: typeof after): number => c.expiryTime()! - (c.lastAccessed as Date).getTime()
  t.same([after.httpOnly, after.maxAge, after.creation, after.creationIndex, lifetime(after)], [before.httpOnly, before.maxAge, before.creation, before.creationIndex, lifetime(before)])
  t.equal(ours.cookieHeader('http://h.test/', 'k'), 'a=2; b=1')
})

t.test('a repeated line is skipped only while it would change nothing', async (t) => {
  const ours = new SessionJar(limits)
  const line = 'sid=abc; Path=/; HttpOnly'
  const url = 'http://h.test/'
  t.equal(ours.capture([line], url), true)
  t.equal(ours.capture([line], url), false)
  t.equal(ours.capture([line], url), false, 'the remembered line again')
  const stored = ours.store.allCookies()[0]!
  // Removed behind the jar's back (the admin API, an eviction): the same line stores it again.
  ours.store.removeCookie(stored.domain!, stored.path!, stored.key, () => {})
  t.equal(ours.store.allCookies().length, 0)
  t.equal(ours.capture([line], url), true, 'stored again')
  t.equal(ours.cookieHeader(url, 'k'), 'sid=abc')
  // Another value between two identical lines is applied, and so is the line after it.
  ours.capture([line], url)
  t.equal(ours.capture(['sid=xyz; Path=/; HttpOnly'], url), true)
  t.equal(ours.capture([line], url), true)
  t.equal(ours.cookieHeader(url, 'k'), 'sid=abc')
  // An Expires cookie past its expiry is not skipped: the full path runs and drops or replaces it.
  const soon = new Date(Date.now() + 1500).toUTCString()
  const expiring = `e=1; Path=/; Expires=${soon}`
  ours.capture([expiring], url)
  ours.capture([expiring], url)
  await new Promise((resolve) => setTimeout(resolve, 2100))
  t.equal(ours.capture([expiring], url), true, 'not skipped: the full path removes the expired cookie')
  t.equal(ours.cookieHeader(url, 'k2'), 'sid=abc', 'and the expired cookie is gone')
})
