/**
 * profiles.<pattern>.capture applies to every profile the pattern matches,
 * resolved like every other profile setting (exact name first).
 */
import t from 'tap'
import { adminGet, cleanup, echoCookies, startProxy, startUpstream, viaProxy } from '../helpers/proxy.js'

t.test('a pattern block captures the traffic of the profiles it matches', async (t) => {
  const up = await startUpstream(echoCookies())
  const proxy = await startProxy({ config: { profiles: { 'vu-*': { capture: { enabled: true, maxEntries: 3 } }, 'vu-off': { capture: { enabled: false } } } } })
  t.teardown(async () => { await proxy.stop(); await up.close(); cleanup(proxy.dataDir) })
  const as = (p: string): { headers: Record<string, string> } => ({ headers: { 'x-session-profile': p } })
  t.match(JSON.parse((await adminGet(proxy, '/_session/profiles/vu-1/capture')).body), { enabled: true, maxEntries: 3, entries: 0 }, 'the settings are the block\'s before any traffic')
  for (let i = 0; i < 5; i++) t.equal((await viaProxy(proxy.port, `${up.origin}/p/${i}`, as('vu-1'))).status, 200)
  await viaProxy(proxy.port, `${up.origin}/off`, as('vu-off'))
  await viaProxy(proxy.port, `${up.origin}/other`, as('other'))
  const har = JSON.parse((await adminGet(proxy, '/_session/profiles/vu-1/har')).body) as { log: { entries: Array<{ request: { url: string } }> } }
  t.same(har.log.entries.map((e) => e.request.url), [2, 3, 4].map((i) => `${up.origin}/p/${i}`), 'captured, within the block\'s maxEntries')
  t.match(JSON.parse((await adminGet(proxy, '/_session/profiles/vu-off/capture')).body), { enabled: false, entries: 0 }, 'an exact block wins over the pattern')
  t.match(JSON.parse((await adminGet(proxy, '/_session/profiles/other/capture')).body), { enabled: false, entries: 0 }, 'a profile no block matches does not capture')
})
