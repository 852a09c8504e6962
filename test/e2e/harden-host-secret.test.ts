/**
 * A hosts[].auth secret file removed after start fails only the requests that
 * need it (502 SP_SECRET_UNAVAILABLE naming the config key, never the value):
 * the profile's other hosts and the admin API keep working.
 */
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { adminGet, cleanup, curl, echoCookies, startProxy, startUpstream, tempDir } from '../helpers/proxy.js'

t.test('a secret file deleted after start: 502 SP_SECRET_UNAVAILABLE for its host only', async (t) => {
  const secured = await startUpstream((req, res) => { req.resume(); res.end(`auth=${req.headers.authorization ?? ''}`) })
  const other = await startUpstream(echoCookies())
  const dir = tempDir('sp-secret-')
  const file = join(dir, 'pw')
  writeFileSync(file, 'file-secret\n')
  const proxy = await startProxy({
    config: { profiles: { alice: { hosts: [{ match: `127.0.0.1:${secured.port}`, auth: { type: 'basic', username: 'alice', password: { file } } }] } } }
  })
  t.teardown(async () => { await proxy.stop(); await secured.close(); await other.close(); cleanup(dir, proxy.dataDir) })
  rmSync(file)

  const elsewhere = await curl(['-x', `http://alice@127.0.0.1:${proxy.port}`, `${other.origin}/?set=a%3D1`])
  t.equal(elsewhere.status, 200, 'the profile\'s other hosts work (its first load does not read the secret)')

  const needs = await curl(['-x', `http://alice@127.0.0.1:${proxy.port}`, '-D', '-', `${secured.origin}/`])
  t.equal(needs.status, 502, 'the request that needs the secret fails')
  t.match(needs.stdout, /x-session-proxy-error: SP_SECRET_UNAVAILABLE/i)
  t.match(needs.stdout, /profiles\.alice\.hosts\[0\]\.auth\.password/, 'the message names the key')
  t.notMatch(needs.stdout, /file-secret/)

  t.equal((await adminGet(proxy, '/_session/profiles/alice/cookies')).status, 200, 'the admin API answers for the profile')

  writeFileSync(file, 'file-secret\n')
  const back = await curl(['-x', `http://alice@127.0.0.1:${proxy.port}`, `${secured.origin}/`])
  t.equal(back.status, 200, 'it works again once the file is back')
  t.equal(back.stdout, `auth=Basic ${Buffer.from('alice:file-secret').toString('base64')}`)
})
