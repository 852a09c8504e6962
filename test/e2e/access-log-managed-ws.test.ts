/**
 * The access line of the managed (autopilot) path and of WebSocket upgrades
 * names the url like the plain path: scheme://host:port/path, no query.
 */
import t from 'tap'
import { ProxyAgent } from 'undici'
import { cleanup, echoCookies, startProxy, startUpstream, viaProxy } from '../helpers/proxy.js'
import { openWs, startWsUpstream } from '../helpers/ws.js'

const linesWith = (lines: string[], msg: string): Array<Record<string, unknown>> =>
  lines.filter((l) => l.includes(`"msg":"${msg}"`)).map((l) => JSON.parse(l) as Record<string, unknown>)

t.test('the managed path logs the url without the query', async (t) => {
  const up = await startUpstream(echoCookies())
  const proxy = await startProxy({ logLevel: 'info', config: { profiles: { ap: { autopilot: [{ match: `127.0.0.1:${up.port}`, csrf: [{ preset: 'tomcat' }] }] } } } })
  t.teardown(async () => { await up.close(); cleanup(proxy.dataDir) })
  const r = await viaProxy(proxy.port, `${up.origin}/managed/path?token=s3cret`, { headers: { 'x-session-profile': 'ap' } })
  t.equal(r.status, 200)
  await proxy.stop()
  const lines = linesWith(proxy.output, 'proxied')
  t.equal(lines.length, 1)
  t.equal(lines[0]!.url, `${up.origin}/managed/path`)
  t.equal(lines[0]!.profile, 'ap')
  t.notOk(proxy.output.some((l) => l.includes('s3cret')), 'the query is not logged')
})

t.test('a WebSocket upgrade logs the url without the query', async (t) => {
  const up = await startWsUpstream()
  const proxy = await startProxy({ logLevel: 'info' })
  const agent = new ProxyAgent({ uri: proxy.url, proxyTunnel: false })
  t.teardown(async () => { await agent.close(); await up.close(); cleanup(proxy.dataDir) })
  const ws = await openWs(`ws://127.0.0.1:${up.port}/socket?token=s3cret`, agent)
  t.equal(await ws.next(), 'hello')
  await ws.close()
  await proxy.stop()
  const lines = linesWith(proxy.output, 'proxied').filter((l) => l.websocket === true)
  t.equal(lines.length, 1)
  t.equal(lines[0]!.url, `${up.origin}/socket`, 'the upgrade request URL, as the cookie jar sees it')
})
