/**
 * The consumer side of the persistence contract on the plain path
 * (src/proxy/forward.ts): the proxy runs in this process so the test can
 * play the producer (a journal write that settles with persistError set),
 * whatever the disk under the test does.
 */
import pino from 'pino'
import t from 'tap'
import { loadConfig } from '../../src/config/load.js'
import { createSessionProxy } from '../../src/server.js'
import type { Profile } from '../../src/session/profiles.js'
import { cleanup, curl, startUpstream, tempDir } from '../helpers/proxy.js'

/** Makes every cookie change of `profile` settle as `outcome` says (the producer side of the contract). */
function settleWrites (profile: Profile, outcome: () => Error | null): void {
  const capture = profile.capture.bind(profile)
  profile.capture = (setCookies, url, requestId) => {
    const changed = capture(setCookies, url, requestId)
    if (changed) profile.pendingWrite = new Promise((resolve) => setImmediate(() => { profile.persistError = outcome(); resolve() }))
    return changed
  }
}

t.test('a response whose cookie changes were not persisted is delivered with x-session-proxy-persist: failed', async (t) => {
  const dataDir = tempDir()
  let n = 0
  const up = await startUpstream((req, res) => {
    if (req.url === '/same') res.writeHead(200, ['Set-Cookie', 'fixed=1', 'Content-Length', '2'])
    else res.writeHead(302, ['Location', '/home', 'Set-Cookie', `sid=${++n}`, 'Content-Length', '0'])
    res.end(req.url === '/same' ? 'ok' : undefined)
  })
  const lines: string[] = []
  const log = pino({ level: 'info' }, { write: (line: string) => { lines.push(line) } })
  const { config } = loadConfig({ flags: { host: '127.0.0.1', port: 0, dataDir }, env: {} })
  const proxy = createSessionProxy({ config, log, version: 'test' })
  const url = await proxy.listen()
  t.teardown(async () => { await proxy.close(); await up.close(); cleanup(dataDir) })
  const profile = proxy.profiles.get('default')

  let failure: Error | null = new Error('EROFS: read-only file system')
  settleWrites(profile, () => failure)
  const r = await curl(['-i', '-x', url, `${up.origin}/login`])
  t.equal(r.status, 302, 'still delivered')
  t.match(r.stdout, /\r\nSet-Cookie: sid=1\r\n/i)
  t.match(r.stdout, /\r\nx-session-proxy-persist: failed\r\n/i, 'marked as not persisted')
  const logged = lines.find((l) => l.includes('were not persisted'))
  t.ok(logged, 'and logged')
  t.match(logged ?? '', /EROFS/)
  t.match(logged ?? '', /"profile":"default"/)

  failure = null
  const ok = await curl(['-i', '-x', url, `${up.origin}/login`])
  t.equal(ok.status, 302)
  t.notMatch(ok.stdout, /x-session-proxy-persist/i, 'a write that reached the disk is not marked')

  await curl(['-x', url, `${up.origin}/same`])
  failure = new Error('EIO')
  const same = await curl(['-i', '-x', url, `${up.origin}/same`])
  t.equal(same.status, 200)
  t.notMatch(same.stdout, /x-session-proxy-persist/i, 'a response that changed no cookie is not marked')
})

t.test('a pendingWrite that rejects (against the contract) still delivers the response, marked', async (t) => {
  const dataDir = tempDir()
  const up = await startUpstream((_req, res) => { res.writeHead(200, ['Set-Cookie', `r=${Date.now()}`, 'Content-Length', '2']); res.end('ok') })
  const { config } = loadConfig({ flags: { host: '127.0.0.1', port: 0, dataDir }, env: {} })
  const proxy = createSessionProxy({ config, log: pino({ level: 'silent' }), version: 'test' })
  const url = await proxy.listen()
  t.teardown(async () => { await proxy.close(); await up.close(); cleanup(dataDir) })
  const profile = proxy.profiles.get('default')
  const capture = profile.capture.bind(profile)
  profile.capture = (setCookies, u, id) => {
    const changed = capture(setCookies, u, id)
    profile.pendingWrite = Promise.reject(new Error('ENOSPC'))
    return changed
  }
  const r = await curl(['-i', '-x', url, `${up.origin}/`])
  t.equal(r.status, 200)
  t.match(r.stdout, /\r\nx-session-proxy-persist: failed\r\n[^]*\r\n\r\nok$/i)
})
