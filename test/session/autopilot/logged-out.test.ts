/**
 * logged-out.ts: each signal against responses shaped like Spring Security
 * 6's (LoginUrlAuthenticationEntryPoint's redirect, the forwarded login page,
 * BasicAuthenticationEntryPoint's 401, Spring Session expiring SESSION,
 * Tomcat deleting JSESSIONID), and the answers that must not count.
 */
import t from 'tap'
import { DEFAULT_LOGGED_OUT, LoggedOutDetector } from '../../../src/session/autopilot/logged-out.js'
import { HostAutopilot } from '../../../src/session/autopilot/host-autopilot.js'
import { springAppPage, springLoginPage, springSessionCookie, springSessionExpireCookie, tomcatDeleteCookie, xsrfClearCookie } from '../../helpers/spring-responses.js'

const json = ['Content-Type', 'application/json']
const location = (l: string): string[] => ['Location', l, 'Content-Length', '0']

t.test('status: 401 by default, configured codes (419, 440) instead', async (t) => {
  const d = new LoggedOutDetector(DEFAULT_LOGGED_OUT)
  t.match(d.checkHead(401, ['WWW-Authenticate', 'Basic realm="Realm"', ...json], null), { signal: 'status', detail: 'status 401' })
  t.equal(d.checkHead(403, json, null), null, '403 (access denied, CSRF) is not a lost session')
  t.equal(d.checkHead(440, json, null), null, '440 needs configuring')

  const custom = new LoggedOutDetector({ status: [419, 440] })
  t.match(custom.checkHead(419, json, null), { signal: 'status', detail: 'status 419' }, 'Laravel-style 419 Page Expired')
  t.match(custom.checkHead(440, json, null), { signal: 'status', detail: 'status 440' }, 'IIS-style 440 Login Time-out')
  t.equal(custom.checkHead(401, json, null), null, 'a configured list replaces the default')
})

t.test('redirect to the login page: absolute and relative, with and without a query', async (t) => {
  const d = new LoggedOutDetector(DEFAULT_LOGGED_OUT)
  const yes = [
    'http://127.0.0.1:8080/login', // LoginUrlAuthenticationEntryPoint (absolute)
    'https://app.example.com/login',
    '/login', // relative (Tomcat useRelativeRedirects)
    '/login/',
    '/login?error', // SimpleUrlAuthenticationFailureHandler
    'http://127.0.0.1:8080/login?error',
    '/app/login', // context path
    'http://127.0.0.1:8080/app/login?expired'
  ]
  for (const l of yes) t.match(d.checkHead(302, location(l), null), { signal: 'redirect', detail: `redirect to ${l}` }, `302 ${l}`)
  t.match(d.checkHead(303, location('/login'), null), { signal: 'redirect' }, '303 too')
  t.match(d.checkHead(301, location('/login'), null), { signal: 'redirect' }, '301 too')
  t.match(d.checkHead(307, location('/login'), null), { signal: 'redirect' }, '307 too')

  // /login?logout is where a client's own logout lands: not a lost session.
  const no = ['/login?logout', '/', 'http://127.0.0.1:8080/', '/?continue', '/dashboard', '/login-help', '/blogin', '/loginpage', '/api/login/status', 'http://login.example.com/']
  for (const l of no) t.equal(d.checkHead(302, location(l), null), null, `302 ${l} is not a signal`)
  t.equal(d.checkHead(200, location('/login'), null), null, 'a Location on a 200 is not a redirect')
  t.equal(d.checkHead(302, ['Content-Length', '0'], null), null, 'a 3xx without Location')

  const custom = new LoggedOutDetector({ redirect: '/sso/authorize' })
  t.match(custom.checkHead(302, location('https://idp.example.com/sso/authorize?client_id=x'), null), { signal: 'redirect' }, 'a configured pattern')
  t.equal(custom.checkHead(302, location('/login'), null), null, 'replaces the default')
})

t.test('body marker: the login page served with 200 (useForward, Tomcat FORM)', async (t) => {
  const d = new LoggedOutDetector({ body: '<title>Please sign in</title>' })
  t.ok(d.needsBody(200, 'text/html;charset=UTF-8'), 'an HTML 200 is read')
  t.ok(d.needsBody(200, 'application/xhtml+xml'))
  t.notOk(d.needsBody(200, 'application/json'), 'JSON is not read')
  t.notOk(d.needsBody(302, 'text/html'), 'a redirect is not read')
  t.notOk(d.needsBody(500, 'text/html'), 'an error page is not read')
  t.notOk(new LoggedOutDetector({ status: [401] }).needsBody(200, 'text/html'), 'no body rule, no read')
  t.equal(d.checkHead(200, ['Content-Type', 'text/html;charset=UTF-8'], null), null, 'the head alone says nothing')
  t.match(d.checkBody(springLoginPage({ csrf: 'x' })), { signal: 'body' })
  t.equal(d.checkBody(springAppPage({ user: 'alice', csrf: 'x' })), null, 'an application page is not a signal')
  t.equal(new LoggedOutDetector({ status: [401] }).checkBody(springLoginPage()), null, 'without a body rule nothing matches')
})

t.test('header marker', async (t) => {
  const d = new LoggedOutDetector({ header: { name: 'X-Session-Expired', pattern: '^true$' } })
  t.match(d.checkHead(200, ['x-session-expired', 'true', ...json], null), { signal: 'header', detail: 'X-Session-Expired: true' }, 'name is case-insensitive')
  t.equal(d.checkHead(200, ['X-Session-Expired', 'false', ...json], null), null, 'the pattern must match')
  t.equal(d.checkHead(200, json, null), null, 'absent')
  const any = new LoggedOutDetector({ header: { name: 'X-Login-Required' } })
  t.match(any.checkHead(401, ['X-Login-Required', '', ...json], null), { signal: 'header' }, 'without a pattern any value counts')
})

t.test('session cookie cleared: Max-Age=0, past Expires, empty value', async (t) => {
  const d = new LoggedOutDetector({ cookieCleared: 'JSESSIONID' })
  const signal = { signal: 'cookie-deleted', detail: 'JSESSIONID deleted' }
  t.match(d.checkHead(200, [], [tomcatDeleteCookie('JSESSIONID')]), signal, "Tomcat's delete line (Max-Age=0, Expires 1970, empty)")
  t.match(d.checkHead(200, [], ['JSESSIONID=0A1B; Max-Age=0; Path=/']), signal, 'Max-Age=0 with a value')
  t.match(d.checkHead(200, [], ['JSESSIONID=0A1B; max-age=-1; Path=/']), signal, 'a negative Max-Age')
  t.match(d.checkHead(200, [], ['JSESSIONID=0A1B; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT']), signal, 'Expires at the epoch')
  t.match(d.checkHead(200, [], ['JSESSIONID=; Path=/']), signal, 'an empty value')
  t.match(d.checkHead(302, location('/'), ['XSRF-TOKEN=abc; Path=/', 'JSESSIONID=; Path=/']), signal, 'among other cookies')

  t.equal(d.checkHead(200, [], ['JSESSIONID=NEWID; Path=/; HttpOnly']), null, 'a new value is a rotation, not a logout')
  t.equal(d.checkHead(200, [], ['JSESSIONID=NEWID; Max-Age=1800; Path=/']), null, 'a positive Max-Age')
  t.equal(d.checkHead(200, [], [`JSESSIONID=NEWID; Path=/; Expires=${new Date(Date.now() + 86400_000).toUTCString()}`]), null, 'a future Expires')
  t.equal(d.checkHead(200, [], [xsrfClearCookie()]), null, 'another cookie cleared')
  t.equal(d.checkHead(200, [], ['JSESSIONIDX=; Max-Age=0']), null, 'a cookie whose name only starts the same')
  t.equal(d.checkHead(200, [], null), null, 'no Set-Cookie')

  const session = new LoggedOutDetector({ cookieCleared: 'SESSION' })
  t.match(session.checkHead(401, json, [springSessionExpireCookie()]), { signal: 'cookie-deleted', detail: 'SESSION deleted' }, 'Spring Session expiring an unknown SESSION')
  t.equal(session.checkHead(200, json, [springSessionCookie('0c3b6f5e-54b1-4f3e-9d4c-3f0d2b8f1a77')]), null, 'a new SESSION is not')
})

t.test('session cookie cleared: an Expires in the past that is not 1970', async (t) => {
  // RFC 6265 5.3 step 3: any expiry time in the past deletes the cookie,
  // e.g. a framework that expires cookies "yesterday" or at a fixed 2000 date.
  const d = new LoggedOutDetector({ cookieCleared: 'JSESSIONID' })
  const yesterday = new Date(Date.now() - 86400_000).toUTCString()
  t.match(d.checkHead(200, [], [`JSESSIONID=0A1B; Path=/; Expires=${yesterday}`]), { signal: 'cookie-deleted' }, `Expires=${yesterday}`)
  t.match(d.checkHead(200, [], ['JSESSIONID=0A1B; Path=/; Expires=Sat, 01 Jan 2000 00:00:00 GMT']), { signal: 'cookie-deleted' }, 'Expires in 2000')
})

t.test('negatives: ordinary answers are not signals', async (t) => {
  const all = new LoggedOutDetector({ status: [401, 440], redirect: '/login/?(\\?.*)?$', header: { name: 'X-Session-Expired', pattern: 'true' }, cookieCleared: 'JSESSIONID', body: 'Please sign in' })
  t.equal(all.checkHead(200, ['Content-Type', 'text/html;charset=UTF-8'], ['JSESSIONID=ABC; Path=/; HttpOnly']), null, 'a normal 200 with a new session')
  t.equal(all.checkHead(302, location('/'), ['JSESSIONID=NEW; Path=/; HttpOnly']), null, 'the login success redirect to /')
  t.equal(all.checkHead(302, location('http://127.0.0.1:8080/orders/42'), null), null, 'a 302 elsewhere')
  t.equal(all.checkHead(204, [], null), null)
  t.equal(all.checkHead(404, json, null), null)
  t.equal(all.checkHead(403, json, null), null)
  t.equal(all.checkHead(500, json, null), null)
  t.equal(all.checkBody('{"user":"alice"}'), null)
})

t.test('defaults by preset (HostAutopilot)', async (t) => {
  const pilot = (login: Record<string, unknown>, loggedOut?: Record<string, unknown>): HostAutopilot =>
    new HostAutopilot({ match: '127.0.0.1:8080', login: { username: 'u', password: { value: 'p' }, ...login }, ...(loggedOut !== undefined ? { loggedOut } : {}) } as never, 'test')
  const spring = pilot({ preset: 'spring-form' }).loggedOut!
  t.match(spring.checkHead(302, location('http://127.0.0.1:8080/login'), null), { signal: 'redirect' }, 'spring-form: redirect to /login')
  t.match(spring.checkHead(401, json, null), { signal: 'status' }, 'spring-form: 401')
  const tomcat = pilot({ preset: 'tomcat-form' }).loggedOut!
  t.ok(tomcat.needsBody(200, 'text/html'), 'tomcat-form: the login page with 200')
  t.match(tomcat.checkBody('<form method="POST" action="j_security_check">'), { signal: 'body' })
  const token = pilot({ preset: 'json-token' }).loggedOut!
  t.match(token.checkHead(401, [], null), { signal: 'status' }, 'json-token: 401')
  const own = pilot({ preset: 'spring-form' }, { status: [440] }).loggedOut!
  t.equal(own.checkHead(302, location('/login'), null), null, 'configured signals replace the defaults')
  t.match(own.checkHead(440, [], null), { signal: 'status' })
  t.equal(new HostAutopilot({ match: '127.0.0.1:8080', csrf: [{ preset: 'spring' }] }, 'test').loggedOut, null, 'no login, no signals')
})

t.test('the default redirect signal: a client\'s own logout and a /login inside a query are not signals', async (t) => {
  const d = new LoggedOutDetector(DEFAULT_LOGGED_OUT)
  const redirect = (location: string): unknown => d.checkHead(302, ['location', location], null)
  t.equal(redirect('/login?logout'), null, 'Spring\'s logout success page is where a logout lands')
  t.equal(redirect('http://app.example.com/app/login?logout'), null)
  t.equal(redirect('/home?next=/login'), null, '/login in the query is not a login path')
  t.match(redirect('/login?expired'), { signal: 'redirect' })
  t.match(redirect('http://app.example.com/app/login'), { signal: 'redirect' })
})
