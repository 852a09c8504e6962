/**
 * explain's verdicts must agree with what tough-cookie (and so the proxy)
 * really sends: many cookies against many URLs, compared with getCookiesSync
 * on a jar configured like the proxy's.
 */
import t from 'tap'
import { judgeCookie, parseExplainTarget } from '../../src/observe/explain.js'
import { SessionJar } from '../../src/session/session-jar.js'

const setters = ['http://app.example.test/a/b', 'https://app.example.test/', 'https://api.example.test/x/', 'http://example.test/']
const lines = [
  'h=1', 'p=1; Path=/a', 'q=1; Path=/a/b/c', 'd=1; Domain=example.test', 'e=1; Domain=app.example.test; Path=/x',
  's=1; Secure', 's2=1; Secure; Domain=example.test', 'x=1; Max-Age=1', 'l=1; SameSite=Lax', 'st=1; SameSite=Strict; Path=/'
]
const urls = [
  'http://app.example.test/', 'http://app.example.test/a', 'http://app.example.test/a/b/c/d', 'https://app.example.test/x/y',
  'http://api.example.test/x/', 'https://api.example.test/', 'http://example.test/', 'https://sub.app.example.test/a', 'http://other.test/'
]

t.test('sent or not, as tough-cookie decides, for every cookie and URL', async (t) => {
  const jar = new SessionJar({ maxCookiesPerProfile: 1000, maxCookiesPerDomain: 100 })
  for (const from of setters) jar.capture(lines, from)
  t.ok(jar.size > 20)
  let compared = 0
  for (const url of urls) {
    const target = parseExplainTarget(url, 'GET', 'same-site')
    const now = Date.now()
    const explained = jar.cookies().filter((c) => judgeCookie(c, target, now).sent).map((c) => `${c.domain}${c.path}${c.key}`).sort()
    const real = jar.jar.getCookiesSync(url).map((c) => `${c.domain}${c.path}${c.key}`).sort()
    t.same(explained, real, url)
    compared++
  }
  t.equal(compared, urls.length)
})

t.test('cross-site contexts agree with tough-cookie sameSiteContext', async (t) => {
  const jar = new SessionJar({ maxCookiesPerProfile: 1000, maxCookiesPerDomain: 100 })
  jar.capture(['n=1', 'l=1; SameSite=Lax', 's=1; SameSite=Strict', 'none=1; SameSite=None'], 'http://app.example.test/')
  for (const [site, context] of [['cross-site', 'none'], ['cross-site-navigation', 'lax'], ['same-site', 'strict']] as const) {
    const target = parseExplainTarget('http://app.example.test/', 'GET', site)
    const explained = jar.cookies().filter((c) => judgeCookie(c, target, Date.now()).sent).map((c) => c.key).sort()
    const real = jar.jar.getCookiesSync('http://app.example.test/', { sameSiteContext: context }).map((c) => c.key).sort()
    t.same(explained, real, site)
  }
})
