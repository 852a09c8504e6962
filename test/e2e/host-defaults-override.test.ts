/**
 * `override: true` on a host default header (issue 13): curl always sends its
 * own User-Agent, so a plain default for it never takes effect; marked
 * override, the configured value replaces curl's, on plain proxying, inside
 * a CONNECT tunnel and in the explain output.
 */
import t from 'tap'
import { cleanup, curl, startProxy, startUpstream, type ProxyProcess, type Upstream } from '../helpers/proxy.js'

let upstream: Upstream
let proxy: ProxyProcess
t.before(async () => {
  upstream = await startUpstream((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ ua: req.headers['user-agent'] ?? null, tenant: req.headers['x-tenant'] ?? null, accept: req.headers.accept ?? null }))
  })
  proxy = await startProxy({
    args: ['--connect-port', String(upstream.port)],
    config: {
      hosts: [{ match: '127.0.0.1', headers: { 'User-Agent': { value: 'billing-probe/1.0', override: true }, Accept: 'text/plain', 'X-Tenant': 'acme' } }],
      profiles: { plain: { hosts: [{ match: '127.0.0.1', headers: { 'User-Agent': 'plain-agent' } }] } }
    }
  })
})
t.teardown(async () => { await proxy.stop(); await upstream.close(); cleanup(proxy.dataDir) })

const seen = (): { method: string, rawHeaders: string[] } => upstream.requests.at(-1)!
const valuesOf = (raw: string[], name: string): string[] => raw.flatMap((v, i) => i % 2 === 0 && v.toLowerCase() === name ? [raw[i + 1]!] : [])

t.test('curl\'s own User-Agent is replaced; the plain defaults still only fill in', async (t) => {
  const r = await curl(['-x', proxy.url, `${upstream.origin}/`])
  t.equal(r.status, 200)
  t.same(JSON.parse(r.stdout), { ua: 'billing-probe/1.0', tenant: 'acme', accept: '*/*' }, 'User-Agent replaced, X-Tenant added, curl\'s Accept kept')
  t.same(valuesOf(seen().rawHeaders, 'user-agent'), ['billing-probe/1.0'], 'exactly one User-Agent goes upstream')
  const explicit = await curl(['-x', proxy.url, '-A', 'my-script/2', `${upstream.origin}/`])
  t.equal(JSON.parse(explicit.stdout).ua, 'billing-probe/1.0', 'also over one the client set on purpose')
})

t.test('inside a CONNECT tunnel too', async (t) => {
  const r = await curl(['-x', proxy.url, '-p', `${upstream.origin}/tunnel`])
  t.equal(r.status, 200, r.stderr)
  t.equal(JSON.parse(r.stdout).ua, 'billing-probe/1.0')
})

t.test('a profile rule without override wins over the global one and only fills in again', async (t) => {
  const r = await curl(['-x', proxy.url, '-H', 'X-Session-Profile: plain', `${upstream.origin}/`])
  t.match(JSON.parse(r.stdout).ua, /^curl\//, 'curl\'s own value, as a plain default never replaces it')
  const none = await curl(['-x', proxy.url, '-H', 'X-Session-Profile: plain', '-H', 'User-Agent:', `${upstream.origin}/`])
  t.equal(JSON.parse(none.stdout).ua, 'plain-agent', 'and fills in when the client sends none')
})

t.test('explain says the header replaces the client\'s value', async (t) => {
  const r = await fetch(`${proxy.url}/_session/profiles/default/explain?url=${encodeURIComponent(upstream.origin + '/')}`)
  const json = await r.json() as { headers: Array<{ name: string, note?: string, applies: boolean }> }
  const ua = json.headers.find((h) => h.name === 'User-Agent')
  t.ok(ua?.applies)
  t.match(ua?.note, /replaces the client's own value \(override: true\)/)
  t.notOk(json.headers.find((h) => h.name === 'X-Tenant')?.note, 'a plain default has no such note')
})
