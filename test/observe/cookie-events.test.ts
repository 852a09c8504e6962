/**
 * Cookie events never fail because of a cookie's expiry, and the jar's own
 * refusals are classified.
 */
import t from 'tap'
import { createHash } from 'node:crypto'
import { Cookie } from 'tough-cookie'
import { cookieRef, valueHash } from '../../src/observe/cookie-events.js'
import { classifyRejection } from '../../src/observe/reject-reason.js'
import { SessionJar, type RejectedCookie } from '../../src/session/session-jar.js'

t.test('cookieRef never throws on an out-of-range expiry', async (t) => {
  const now = new Date()
  // What the store never holds any more, but an event must still describe safely.
  const c = new Cookie({ key: 'a', value: '1', domain: 'h.test', path: '/', maxAge: 99999999999999, lastAccessed: now })
  t.match(cookieRef(c).expires, /^\+275760-/)
  const bad = new Cookie({ key: 'a', value: '1', domain: 'h.test', path: '/', expires: new Date(Number.NaN) })
  t.equal(cookieRef(bad).expires, null)
})

t.test('the jar\'s refusals get their own reasons', async (t) => {
  const jar = new SessionJar({ maxCookiesPerDomain: 10, maxCookiesPerProfile: 10 })
  const rejected: RejectedCookie[] = []
  jar.onReject = (r) => rejected.push(r)
  jar.capture(['v=\u20ac', 'n\u007f=1', 'p=1; Path=/x\u0001'], 'http://h.test/')
  t.same(rejected.map((r) => classifyRejection(r.reason)), ['unsendable-value', 'unsendable-name', 'unstorable-attribute'])
  t.equal(classifyRejection('Cookie expiry is beyond 9999-12-31T23:59:59Z'), 'unstorable-attribute')
  t.equal(classifyRejection('Cookie failed to parse'), 'parse-error', 'tough-cookie\'s reasons are unchanged')
  t.equal(classifyRejection('Cookie is Secure but this is not a secure connection'), 'secure-over-http')
})

t.test('login state is held only while it matters: profiles that come and go do not accumulate', async (t) => {
  const { default: pino } = await import('pino')
  const { SessionEvents } = await import('../../src/observe/events.js')
  const { CookieEventWiring } = await import('../../src/observe/cookie-events.js')
  const events = new SessionEvents({ maxPerProfile: 2, maxTotal: 100, persist: false, sessionCookies: ['JSESSIONID'], fixationWindowMs: 0 }, null, pino({ level: 'silent' }))
  const wiring = new CookieEventWiring(events)
  const login = { requestId: null, flow: 'form', relogin: false }
  for (let i = 0; i < 5000; i++) {
    const profile = `p${i}`
    events.record(profile, { type: 'login.started', ...login, trigger: 'test' })
    if (i % 2 === 0) events.record(profile, { type: 'login.succeeded', ...login, steps: 1, durationMs: 1 })
    else events.record(profile, { type: 'login.failed', ...login, steps: 1, durationMs: 1, error: 'x' })
  }
  t.ok(wiring.trackedProfiles <= 512, `after 5000 logins of distinct profiles, ${wiring.trackedProfiles} entries are held`)
  events.record('running', { type: 'login.started', ...login, trigger: 'test' })
  for (let i = 0; i < 2000; i++) {
    events.record(`q${i}`, { type: 'login.started', ...login, trigger: 'test' })
    events.record(`q${i}`, { type: 'login.failed', ...login, steps: 1, durationMs: 1, error: 'x' })
  }
  // A session cookie rotated during the login that is still running is flagged as fixation protection.
  const before = new Cookie({ key: 'JSESSIONID', value: 'old', domain: 'h.test', path: '/' })
  const after = new Cookie({ key: 'JSESSIONID', value: 'new', domain: 'h.test', path: '/' })
  wiring.onChange({ name: 'running' } as Parameters<typeof wiring.onChange>[0], { type: 'set', cookie: after, previous: before }, 7)
  const rotated = events.list('running').events.find((e) => e.type === 'session.rotated')
  t.match(rotated, { type: 'session.rotated', fixation: true }, 'a login still running keeps its state through sweeps')
})

t.test('valueHash: the remembered recent values never answer for another value', async (t) => {
  const expect = (v: string): string => createHash('sha256').update(v).digest('hex').slice(0, 12)
  const values = ['a', 'b', 'a', 'c', 'b', 'b', '', 'a', 'd', 'c', 'a']
  for (const v of values) t.equal(valueHash(v), expect(v), JSON.stringify(v))
  // A rotating cookie: each new value, then the previous one (the value before it).
  for (let i = 1; i < 20; i++) {
    t.equal(valueHash(`v${i}`), expect(`v${i}`))
    t.equal(valueHash(`v${i - 1}`), expect(`v${i - 1}`))
  }
})
