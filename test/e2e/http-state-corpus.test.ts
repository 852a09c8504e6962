/**
 * The http-state (RFC 6265) parser corpus, end to end through the running
 * proxy: an upstream sends each case's Set-Cookie lines, and the next request
 * through the proxy must carry exactly the expected Cookie header.
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { startRawCookieServer } from '../helpers/raw-cookie-server.js'
import { cleanup, startProxy, viaProxy } from '../helpers/proxy.js'

interface Case {
  test: string
  received: string[]
  sent: Array<{ name: string, value: string }>
  'sent-to'?: string
}

const corpusPath = fileURLToPath(new URL('../fixtures/http-state/http-state-parser.json', import.meta.url))
const cases = (JSON.parse(readFileSync(corpusPath, 'utf8')) as Case[]).filter((c) => !c.test.startsWith('DISABLED'))

t.test('http-state corpus through the proxy', async (t) => {
  t.equal(cases.length, 218, 'all 218 enabled cases are present')
  const byName = new Map(cases.map((c) => [c.test, c]))
  const upstream = await startRawCookieServer((path) => {
    const m = /^\/cookie-parser\?(.+)$/.exec(path)
    return m === null ? null : byName.get(m[1]!)?.received ?? []
  })
  // Every corpus host (home.example.org, sibling.example.org, ...) on port
  // 8888 connects to the local upstream; the jar still sees the real names.
  const proxy = await startProxy({ args: ['--connect-to', `:8888:127.0.0.1:${upstream.port}`], logLevel: 'warn' })
  t.teardown(async () => { await proxy.stop(); await upstream.close(); cleanup(proxy.dataDir) })

  const runCase = async (c: Case): Promise<void> => {
    const profile = `case-${c.test.toLowerCase()}`
    const headers = { 'x-session-profile': profile }
    await viaProxy(proxy.port, `http://home.example.org:8888/cookie-parser?${c.test}`, { headers })
    const sentTo = new URL(c['sent-to'] ?? `/cookie-parser-result?${c.test}`, 'http://home.example.org:8888').href
    const res = await viaProxy(proxy.port, sentTo, { headers })
    const got = (JSON.parse(res.body) as { cookie: string | null }).cookie
    const expected = c.sent.length === 0 ? null : c.sent.map((s) => s.name === '' ? s.value : `${s.name}=${s.value}`).join('; ')
    t.equal(got, expected, c.test)
  }
  const queue = [...cases]
  await Promise.all(Array.from({ length: 8 }, async () => {
    for (let c = queue.shift(); c !== undefined; c = queue.shift()) await runCase(c)
  }))
})
