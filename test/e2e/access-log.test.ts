/**
 * The access log: one line per proxied request, naming the URL (without its
 * query, which can carry secrets), written through the buffered destination:
 * lines reach stdout while the proxy runs (idle flush) and on SIGTERM.
 */
import t from 'tap'
import { cleanup, echoCookies, startProxy, startUpstream, viaProxy } from '../helpers/proxy.js'

const proxiedLines = (lines: string[]): Array<Record<string, unknown>> =>
  lines.filter((l) => l.includes('"msg":"proxied"')).map((l) => JSON.parse(l) as Record<string, unknown>)

async function waitFor (check: () => boolean, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (check()) return true
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return check()
}

t.test('one access line per request, with the url and without the query', async (t) => {
  const up = await startUpstream(echoCookies())
  const proxy = await startProxy({ logLevel: 'info' })
  t.teardown(async () => { await up.close(); cleanup(proxy.dataDir) })
  const r = await viaProxy(proxy.port, `${up.origin}/some/path?token=s3cret`)
  t.equal(r.status, 200)
  // Buffered, but an idle proxy writes its lines out within the flush interval.
  t.ok(await waitFor(() => proxiedLines(proxy.output).length === 1), 'the line reached stdout while the proxy runs')
  const [line] = proxiedLines(proxy.output)
  t.equal(line!.url, `${up.origin}/some/path`)
  t.equal(line!.method, 'GET')
  t.equal(line!.status, 200)
  t.equal(line!.profile, 'default')
  t.notOk(proxy.output.some((l) => l.includes('s3cret')), 'the query is not logged')

  for (let i = 0; i < 20; i++) await viaProxy(proxy.port, `${up.origin}/n/${i}`)
  await proxy.stop()
  const lines = proxiedLines(proxy.output)
  t.equal(lines.length, 21, 'every line was written by the time the proxy stopped (SIGTERM flush)')
  t.same(lines.slice(1).map((l) => l.url), Array.from({ length: 20 }, (_, i) => `${up.origin}/n/${i}`), 'in order')
})

t.test('a rejected request is logged with its url', async (t) => {
  const proxy = await startProxy({ logLevel: 'info' })
  t.teardown(() => cleanup(proxy.dataDir))
  // A profile name that is not a valid name is refused before anything is sent upstream.
  const r = await viaProxy(proxy.port, 'http://127.0.0.1:9/x?q=1', { headers: { 'x-session-profile': '../bad' } })
  await proxy.stop()
  const rejected = proxy.output.filter((l) => l.includes('"msg":"rejected"')).map((l) => JSON.parse(l) as Record<string, unknown>)
  t.equal(rejected.length, 1, `one rejected line (status ${r.status})`)
  t.equal(rejected[0]!.url, 'http://127.0.0.1:9/x')
  t.equal(rejected[0]!.status, r.status)
})
