/**
 * managed-exchange.ts, the consumer side of the persistence contract: the
 * proxy runs in this process (createSessionProxy) so the test can make the
 * profile's journal fail the way the contract describes (pendingWrite
 * settles, persistError is set) without a broken disk. A response whose
 * cookie changes (its own, or the login's it waited for) were not saved is
 * still delivered, with `x-session-proxy-persist: failed`, and logged; one
 * that changed nothing is not marked.
 */
import t from 'tap'
import http from 'node:http'
import { Writable } from 'node:stream'
import { loadConfig } from '../../src/config/load.js'
import { createLogger } from '../../src/log.js'
import { createSessionProxy } from '../../src/server.js'
import { PERSIST_FAILED_HEADER } from '../../src/proxy/respond.js'
import { cleanup, startUpstream, tempDir, viaProxy } from '../helpers/proxy.js'

t.test('a managed response whose cookie changes were not saved says so', async (t) => {
  let visits = 0
  const up = await startUpstream((req, res) => {
    req.resume()
    const cookie = req.headers.cookie ?? ''
    if (req.url === '/login') {
      if (req.headers.authorization !== 'Basic ' + Buffer.from('alice:pw').toString('base64')) { res.writeHead(401); res.end(); return }
      res.writeHead(200, { 'set-cookie': 'SID=ok; Path=/' })
      res.end()
      return
    }
    if (!cookie.includes('SID=ok')) { res.writeHead(401, { 'content-type': 'text/plain' }); res.end('log in'); return }
    if (req.url === '/visit') res.writeHead(200, { 'content-type': 'text/plain', 'set-cookie': `seen=${++visits}; Path=/` })
    else res.writeHead(200, { 'content-type': 'text/plain' })
    res.end('hello alice')
  })
  const dataDir = tempDir()
  const lines: string[] = []
  const log = createLogger('info', { pretty: false, destination: new Writable({ write (chunk: Buffer, _enc, cb) { lines.push(chunk.toString('utf8')); cb() } }) })
  const { config } = loadConfig({
    env: {},
    flags: {
      host: '127.0.0.1',
      port: 0,
      dataDir,
      profiles: { p: { autopilot: [{ match: `127.0.0.1:${up.port}`, login: { preset: 'basic-session', loginPath: '/login', username: 'alice', password: { value: 'pw' } } }] } }
    }
  })
  const sp = createSessionProxy({ config, log, version: 'test' })
  const url = await sp.listen()
  const port = Number(new URL(url).port)
  t.teardown(async () => {
    await sp.close()
    await up.close()
    cleanup(dataDir)
  })

  const profile = sp.profiles.get('p')
  const failure = new Error('EROFS: read-only file system')
  // The producer side of the contract, for a disk that refuses writes.
  profile.journal.append = async () => { profile.persistError = failure }

  const first = await viaProxy(port, `${up.origin}/home`, { headers: { 'x-session-profile': 'p' } })
  t.equal(first.status, 200, 'logged in and replayed: the answer is delivered')
  t.equal(first.body, 'hello alice')
  t.equal(first.headers[PERSIST_FAILED_HEADER], 'failed', "the login's cookie is not on disk, and the client is told")
  t.ok(lines.some((l) => l.includes('its cookie changes could not be saved') && l.includes('EROFS')), 'and it is logged')

  const visit = await viaProxy(port, `${up.origin}/visit`, { headers: { 'x-session-profile': 'p' } })
  t.equal(visit.status, 200)
  t.equal(visit.headers[PERSIST_FAILED_HEADER], 'failed', 'its own Set-Cookie was not saved either')

  const plain = await viaProxy(port, `${up.origin}/home`, { headers: { 'x-session-profile': 'p' } })
  t.equal(plain.status, 200)
  t.equal(plain.headers[PERSIST_FAILED_HEADER], undefined, 'a response that changed nothing is not marked')

  const admin = await new Promise<http.IncomingMessage>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/_session/profiles/p/login', headers: { 'x-session-proxy-admin': '1' } }, resolve)
    req.on('error', reject)
    req.end()
  })
  admin.resume()
  t.equal(admin.statusCode, 200, 'the admin login runs')
  t.equal(admin.headers[PERSIST_FAILED_HEADER], 'failed', 'and its answer says the session was not saved')

  profile.persistError = null
  profile.journal.append = async () => {}
  const recovered = await viaProxy(port, `${up.origin}/visit`, { headers: { 'x-session-profile': 'p' } })
  t.equal(recovered.headers[PERSIST_FAILED_HEADER], undefined, 'once writes succeed, no mark')
})
