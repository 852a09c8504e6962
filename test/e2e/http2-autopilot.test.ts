/**
 * An HTTP/2 client inside an intercepted tunnel gets the same session
 * features as an HTTP/1.1 one: the autopilot logs in (and in again when the
 * upstream session ends) transparently, and the HAR export records the
 * client's HTTP version (HTTP/2.0 for its streams, HTTP/1.1 otherwise).
 */
import t from 'tap'
import { adminGet, cleanup, curl, startProxy, tempDir } from '../helpers/proxy.js'
import { createTestCa, startHttpsUpstream } from '../helpers/tls.js'
import { h2Get, h2Through } from '../helpers/h2.js'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Har } from '../../src/observe/har.js'

t.test('autopilot and HAR over an HTTP/2 client connection', async (t) => {
  const ca = createTestCa()
  // A form-login app: POST /login issues a fresh session id; /expire ends every session (as a server restart would).
  const valid = new Set<string>()
  let logins = 0
  const up = await startHttpsUpstream((req, res) => {
    if (req.url === '/login' && req.method === 'POST') {
      let form = ''
      req.setEncoding('utf8')
      req.on('data', (c: string) => { form += c })
      req.on('end', () => {
        const ok = new URLSearchParams(form).get('user') === 'u' && new URLSearchParams(form).get('pass') === 'p'
        if (!ok) { res.writeHead(403); res.end('bad credentials'); return }
        const sid = `s${++logins}`
        valid.add(sid)
        res.writeHead(200, { 'set-cookie': `sid=${sid}; Path=/; Secure; HttpOnly`, 'content-type': 'text/plain' })
        res.end('welcome')
      })
      return
    }
    const sid = /(?:^|; )sid=([^;]+)/.exec(req.headers.cookie ?? '')?.[1]
    if (sid === undefined || !valid.has(sid)) { res.writeHead(401, { 'content-type': 'text/plain' }); res.end('log in'); return }
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ sid, path: req.url }))
  }, ca)
  const authority = `localhost:${up.port}`
  const proxy = await startProxy({
    args: ['--upstream-ca', ca.file, '--connect-port', String(up.port)],
    config: {
      profiles: {
        ap: {
          capture: { enabled: true },
          autopilot: [{
            match: authority,
            login: { username: 'u', password: { value: 'p' }, steps: [{ name: 'sign in', method: 'POST', url: '/login', form: { user: '{{username}}', pass: '{{password}}' }, expect: { status: [200] } }] },
            loggedOut: { status: [401] }
          }]
        }
      }
    }
  })
  const pem = (await adminGet(proxy, '/_session/ca.pem')).body
  const cacert = join(tempDir('sp-cacert-'), 'proxy-ca.pem')
  writeFileSync(cacert, pem)
  t.teardown(async () => { await proxy.stop(); await up.close(); cleanup(proxy.dataDir, ca.dir) })

  const session = await h2Through(proxy, authority, pem, { user: 'ap' })
  t.teardown(() => session.close())

  const first = await h2Get(session, '/data/1')
  t.equal(first.status, 200, 'the first HTTP/2 request is answered after a transparent login')
  t.same(JSON.parse(first.body), { sid: 's1', path: '/data/1' })
  t.equal(logins, 1, 'one login')

  const again = await h2Get(session, '/data/2')
  t.same(JSON.parse(again.body), { sid: 's1', path: '/data/2' }, 'the next stream reuses the session')
  t.equal(logins, 1)

  valid.clear()
  const after = await Promise.all(Array.from({ length: 10 }, async (_, i) => await h2Get(session, `/data/c${i}`)))
  t.same(after.map((a) => a.status), after.map(() => 200), '10 concurrent streams after the upstream session ended: all 200')
  t.same(new Set(after.map((a) => (JSON.parse(a.body) as { sid: string }).sid)), new Set(['s2']), 'all in the new session')
  t.equal(logins, 2, 'one re-login for all of them (the login is shared)')

  const h1 = await curl(['-x', proxy.url, '-U', 'ap:', '--cacert', cacert, '--http1.1', `https://${authority}/data/h1`])
  t.same(JSON.parse(h1.stdout), { sid: 's2', path: '/data/h1' }, 'an HTTP/1.1 client of the profile is in the same session')

  const har = (await adminGet(proxy, '/_session/profiles/ap/har')).json as Har
  const byPath = (p: string): Har['log']['entries'][number] | undefined => har.log.entries.find((e) => e.request.url === `https://${authority}${p}` && e.response.status === 200)
  t.match(byPath('/data/1'), { request: { httpVersion: 'HTTP/2.0' }, response: { httpVersion: 'HTTP/2.0' } }, 'HAR: an HTTP/2 stream is recorded as HTTP/2.0')
  t.match(byPath('/data/c3'), { request: { httpVersion: 'HTTP/2.0' }, response: { httpVersion: 'HTTP/2.0' } })
  t.match(byPath('/data/h1'), { request: { httpVersion: 'HTTP/1.1' }, response: { httpVersion: 'HTTP/1.1' } }, 'an HTTP/1.1 exchange as HTTP/1.1')
})
