/**
 * One row per way into the proxy (issue 10's matrix): plain http, intercepted
 * https (HTTP/1.1), reverse mode, WebSocket handshakes, the autopilot's login
 * requests, and HTTP/2 inside a tunnel (curl --http2 must report version 2).
 * Every row shows the same behaviour:
 * the profile's cookies are sent, host defaults are added, addon hooks run
 * with the right flow.kind, cookie changes become events naming the request,
 * refusals carry `x-session-proxy-error` (CONNECT and WebSocket refusals too),
 * and request ids are unique across entries.
 */
import type { IncomingHttpHeaders } from 'node:http'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { ProxyAgent } from 'undici'
import { loginRule, rawHandshake, startLoginApp, writeConfig, writeModule } from '../helpers/addons.js'
import { adminGet, assertNoGuard, cleanup, curl, echoCookies, startProxy, startUpstream, tempDir, viaProxy, type ProxyProcess } from '../helpers/proxy.js'
import { connectRaw, readResponse } from '../helpers/raw-client.js'
import { createTestCa, startHttpsUpstream } from '../helpers/tls.js'
import { openWs, startWsUpstream } from '../helpers/ws.js'
import { listEvents, type Ev } from '../helpers/events.js'

/** What a row's checked request looked like at the upstream, and the answer to its refusal. */
interface RowResult {
  seen: IncomingHttpHeaders
  /** The cookie name the row's response set (its cookie.set event carries the request id). */
  setCookie: string
  refusal: { status: number, code: string | undefined }
}

interface Row {
  entry: string
  kind: string
  profile: string
  /** The proxy whose events hold the row's cookie events. */
  proxy: () => ProxyProcess
  run: () => Promise<RowResult>
}

const ca = createTestCa()
const dir = tempDir('sp-matrix-')
const app = await startUpstream(echoCookies())
const secure = await startHttpsUpstream(echoCookies(), ca)
const ws = await startWsUpstream()
const login = await startLoginApp()
writeModule(dir, 'matrix.mjs', `
  export default {
    name: 'matrix',
    request (flow) {
      flow.request.headers.set('x-addon-tag', flow.profile + '/' + flow.kind)
      flow.request.headers.set('x-flow-id', String(flow.id))
    }
  }
`)
const defaults = { headers: { 'X-Default': 'on' } }
const config = writeConfig(dir, {
  addons: ['matrix.mjs'],
  hosts: [{ match: '127.0.0.1', ...defaults }, { match: 'localhost', ...defaults }],
  profiles: { ap: { autopilot: [loginRule(login)] } }
})
const common = ['--config', config, '--upstream-ca', ca.file, '--connect-port', String(secure.port)]
const proxy = await startProxy({ args: common })
const reverse = await startProxy({ args: [...common, '--reverse', app.origin] })
const cacert = join(dir, 'proxy-ca.pem')
writeFileSync(cacert, (await adminGet(proxy, '/_session/ca.pem')).body)
t.teardown(async () => {
  await proxy.stop(); await reverse.stop()
  await app.close(); await secure.close(); await ws.close(); await login.close()
  cleanup(proxy.dataDir, reverse.dataDir, ca.dir, dir)
})

const BAD_PROFILE = { 'x-session-profile': 'no good!' }
const lastSeen = (up: { requests: Array<{ headers: IncomingHttpHeaders }> }): IncomingHttpHeaders => up.requests.at(-1)!.headers

async function connectRefusal (port: number): Promise<RowResult['refusal']> {
  const s = await connectRaw(proxy.port)
  s.write(`CONNECT 127.0.0.1:${port} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`)
  const r = await readResponse(s)
  s.destroy()
  return { status: r.status, code: r.headers['x-session-proxy-error'] }
}

async function httpsRow (http2: boolean): Promise<RowResult> {
  const x = ['-x', proxy.url, '--cacert', cacert, http2 ? '--http2' : '--http1.1']
  await curl([...x, `${secure.origin}/seed?set=seed%3Dhttps`])
  const name = http2 ? 'row_h2' : 'row_https'
  const r = await curl([...x, `${secure.origin}/row?set=${name}%3D1`])
  if (r.status !== 200) throw new Error(`https row: ${r.status} ${r.stderr}`)
  const seen = lastSeen(secure)
  if (http2) {
    const version = await curl([...x, '-o', '/dev/null', '-w', '%{http_version}\n%{http_code}', `${secure.origin}/probe`])
    if (!version.stdout.trim().startsWith('2')) throw new Error(`h2 row: curl --http2 got HTTP ${version.stdout}`)
  }
  // CONNECT to a port outside connect.allowedPorts is refused before any TLS.
  const refusal = await connectRefusal(app.port)
  const inner = await curl([...x, '-H', 'x-session-profile: no good!', '-D', '-', '-o', '/dev/null', `${secure.origin}/refused`])
  if (!/x-session-proxy-error: SP_PROFILE_INVALID/i.test(inner.stdout)) throw new Error(`inner refusal without a code: ${inner.stdout}`)
  return { seen, setCookie: name, refusal }
}

const rows: Row[] = [
  {
    entry: 'http',
    kind: 'http',
    profile: 'default',
    proxy: () => proxy,
    run: async () => {
      await viaProxy(proxy.port, `${app.origin}/seed?set=seed%3Dhttp`)
      await viaProxy(proxy.port, `${app.origin}/row?set=row_http%3D1`)
      const seen = lastSeen(app)
      const r = await viaProxy(proxy.port, `${app.origin}/refused`, { headers: BAD_PROFILE })
      return { seen, setCookie: 'row_http', refusal: { status: r.status, code: r.headers['x-session-proxy-error'] as string | undefined } }
    }
  },
  { entry: 'https', kind: 'https', profile: 'default', proxy: () => proxy, run: async () => await httpsRow(false) },
  {
    entry: 'reverse',
    kind: 'reverse',
    profile: 'default',
    proxy: () => reverse,
    run: async () => {
      await curl([`${reverse.url}/seed?set=seed%3Dreverse`])
      await curl([`${reverse.url}/row?set=row_reverse%3D1`])
      const seen = lastSeen(app)
      const r = await curl(['-H', 'x-session-profile: no good!', '-D', '-', '-o', '/dev/null', `${reverse.url}/refused`])
      return { seen, setCookie: 'row_reverse', refusal: { status: r.status, code: /x-session-proxy-error: (\S+)/i.exec(r.stdout)?.[1] } }
    }
  },
  {
    entry: 'websocket',
    kind: 'websocket',
    profile: 'default',
    proxy: () => proxy,
    run: async () => {
      // Cookies are per host, not per port: the http row's seed is the one sent.
      const agent = new ProxyAgent({ uri: proxy.url, proxyTunnel: false })
      try {
        const s = await openWs(`ws://127.0.0.1:${ws.port}/socket`, agent)
        await s.next()
        await s.close()
      } finally {
        await agent.close()
      }
      const seen = ws.handshakes.at(-1)!
      const r = await rawHandshake(proxy.port, `http://127.0.0.1:${ws.port}/refused`, BAD_PROFILE)
      return { seen, setCookie: 'ws', refusal: { status: r.status, code: r.headers['x-session-proxy-error'] } }
    }
  },
  {
    entry: 'login',
    kind: 'login',
    profile: 'ap',
    proxy: () => proxy,
    run: async () => {
      // A cookie for the host, set through another port; then a request that needs the login.
      await viaProxy(proxy.port, `${app.origin}/seed?set=seed%3Dlogin`, { headers: { 'x-session-profile': 'ap' } })
      const r = await viaProxy(proxy.port, `${login.origin}/account`, { headers: { 'x-session-profile': 'ap' } })
      if (r.status !== 200) throw new Error(`login row: ${r.status} ${r.body}`)
      const seen = login.requests.find((q) => q.url === '/login')!.headers
      const refused = await viaProxy(proxy.port, `${login.origin}/refused`, { headers: BAD_PROFILE })
      return { seen, setCookie: 'sid', refusal: { status: refused.status, code: refused.headers['x-session-proxy-error'] as string | undefined } }
    }
  },
  { entry: 'h2', kind: 'https', profile: 'default', proxy: () => proxy, run: async () => await httpsRow(true) }
]

const ids: Array<{ entry: string, id: number }> = []

for (const row of rows) {
  t.test(`entry ${row.entry}`, async (t) => {
    const r = await row.run()
    t.match(r.seen.cookie, /(^|; )seed=/, 'the profile\'s cookies are sent')
    t.equal(r.seen['x-default'], 'on', 'host defaults are added')
    t.equal(r.seen['x-addon-tag'], `${row.profile}/${row.kind}`, 'addon request hooks run, with flow.kind')
    const flowId = Number(r.seen['x-flow-id'])
    t.ok(Number.isInteger(flowId) && flowId > 0, 'the flow has a request id')
    const { events } = await listEvents(row.proxy(), row.profile, '?limit=1000')
    const set = events.filter((e: Ev) => e.type === 'cookie.set' && (e.cookie as { name?: string }).name === r.setCookie)
    t.ok(set.length > 0, `cookie.set for ${r.setCookie} is an event`)
    const id = set.at(-1)!.requestId
    t.equal(id, flowId, 'the event names the request the addon saw')
    ids.push({ entry: row.entry, id: id! })
    t.ok(r.refusal.status >= 400, `a refusal (${r.refusal.status})`)
    t.match(r.refusal.code, /^SP_[A-Z_]+$/, 'carries x-session-proxy-error')
  })
}

t.test('request ids are unique across entries of one process', async (t) => {
  const ofProxy = ids.filter((x) => x.entry !== 'reverse')
  t.equal(new Set(ofProxy.map((x) => x.id)).size, ofProxy.length, JSON.stringify(ids))
  t.doesNotThrow(() => { assertNoGuard(proxy); assertNoGuard(reverse) })
})
