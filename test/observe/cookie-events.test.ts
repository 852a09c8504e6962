/**
 * Cookie events never fail because of a cookie's expiry, and the jar's own
 * refusals are classified.
 */
import t from 'tap'
import { Cookie } from 'tough-cookie'
import { cookieRef } from '../../src/observe/cookie-events.js'
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
