/**
 * A jar file that exists but cannot be read (here a directory: EISDIR; EIO
 * and EACCES take the same path) fails only its own profile, with 503
 * SP_PROFILE_UNAVAILABLE and a health problem naming the file; other
 * profiles keep working, and the profile works again once the file can be read.
 */
import { mkdirSync, rmdirSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { adminGet, cleanup, curl, echoCookies, startProxy, startUpstream, tempDir } from '../helpers/proxy.js'

t.test('an unreadable jar file: 503 SP_PROFILE_UNAVAILABLE for its profile only, health degraded, recovers', async (t) => {
  const up = await startUpstream(echoCookies())
  const dataDir = tempDir()
  const proxy = await startProxy({ dataDir })
  t.teardown(async () => { await proxy.stop(); await up.close(); cleanup(dataDir) })
  const jar = join(dataDir, 'jars', 'p.jsonl')
  mkdirSync(jar)

  const refused = await curl(['-x', `http://p@127.0.0.1:${proxy.port}`, '-D', '-', `${up.origin}/?set=a%3D1`])
  t.equal(refused.status, 503, 'the profile whose jar cannot be read gets 503, not 500')
  t.match(refused.stdout, /x-session-proxy-error: SP_PROFILE_UNAVAILABLE/i)
  t.notMatch(refused.stdout, /SP_INTERNAL/)

  const other = await curl(['-x', `http://q@127.0.0.1:${proxy.port}`, `${up.origin}/?set=b%3D2`])
  t.equal(other.status, 200, 'another profile keeps working')

  const health = (await adminGet(proxy, '/_session/health')).json as { status: string, problems: unknown[] }
  t.equal(health.status, 'degraded')
  t.match(health.problems, [{ kind: 'unreadable', profile: 'p', file: jar, code: 'EISDIR' }], 'health names the file and the error')

  const listing = await adminGet(proxy, '/_session/profiles')
  t.equal(listing.status, 200, 'the profile listing still answers')
  t.match(listing.json, { profiles: [{ name: 'p', cookies: null, error: 'SP_PROFILE_UNAVAILABLE' }, { name: 'q', cookies: 1 }] })

  rmdirSync(jar)
  const again = await curl(['-x', `http://p@127.0.0.1:${proxy.port}`, `${up.origin}/?set=a%3D1`])
  t.equal(again.status, 200, 'the profile works once its file can be read')
  const after = (await adminGet(proxy, '/_session/health')).json as { status: string }
  t.equal(after.status, 'ok', 'and health is ok again')
})
