import { createRequire } from 'node:module'
import t from 'tap'
import { cleanup, curl, startProxy, startUpstream } from '../helpers/proxy.js'
import { parsePrometheusStrict, sampleValue } from '../helpers/prom-parse.js'

const require = createRequire(import.meta.url)
interface ThirdPartyFamily { name: string, type: string, help: string, metrics: Array<{ value?: string, labels?: Record<string, string>, buckets?: Record<string, string>, count?: string, sum?: string }> }
const parseThirdParty = require('parse-prometheus-text-format') as (text: string) => ThirdPartyFamily[]

async function scrape (url: string): Promise<{ status: number, type: string | null, text: string }> {
  const r = await fetch(`${url}/_session/metrics`)
  return { status: r.status, type: r.headers.get('content-type'), text: await r.text() }
}

t.test('GET /_session/metrics: Prometheus text that parsers accept, counting real traffic', async (t) => {
  const up = await startUpstream((req, res) => {
    const status = Number(new URL(req.url!, 'http://x').searchParams.get('status') ?? '200')
    res.writeHead(status, { 'set-cookie': 'JSESSIONID=' + String(Math.random()) + '; Path=/' })
    res.end('x')
  })
  const proxy = await startProxy({ config: { metrics: { maxProfileLabels: 2 } } })
  t.teardown(async () => { await proxy.stop(); await up.close(); cleanup(proxy.dataDir) })
  const host = `127.0.0.1:${proxy.port}`
  for (let i = 0; i < 3; i++) await curl(['-x', `http://alice@${host}`, `${up.origin}/?status=200`])
  await curl(['-x', `http://alice@${host}`, `${up.origin}/?status=404`])
  await curl(['-x', `http://alice@${host}`, `${up.origin}/?status=503`])
  await curl(['-x', `http://alice@${host}`, `${up.origin}/?status=302`])
  await curl(['-x', `http://bob@${host}`, `${up.origin}/`])
  await curl(['-x', `http://carol@${host}`, `${up.origin}/`])
  await curl(['-x', `http://dave@${host}`, `${up.origin}/?status=500`])
  await curl(['-x', `http://bob@${host}`, 'http://127.0.0.1:1/'])
  await curl(['-x', `http://alice@${host}`, 'http://not-a-host.invalid/'])

  const m = await scrape(proxy.url)
  t.equal(m.status, 200)
  t.equal(m.type, 'text/plain; version=0.0.4; charset=utf-8')
  const families = parsePrometheusStrict(m.text)
  t.ok(families.length >= 10, 'the strict parser accepts it')
  const third = parseThirdParty(m.text)
  t.same(third.map((f) => f.name), families.map((f) => f.name), 'parse-prometheus-text-format reads the same families')
  t.same(third.map((f) => f.type.toLowerCase()), families.map((f) => f.type))

  const v = (name: string, labels: Record<string, string> = {}): number | undefined => sampleValue(families, name, labels)
  t.equal(v('session_proxy_requests_total', { profile: 'alice', status_class: '2xx' }), 3)
  t.equal(v('session_proxy_requests_total', { profile: 'alice', status_class: '3xx' }), 1)
  t.equal(v('session_proxy_requests_total', { profile: 'alice', status_class: '4xx' }), 1)
  t.equal(v('session_proxy_requests_total', { profile: 'alice', status_class: '5xx' }), 2, 'a 503 and a 502 for the unknown host')
  t.equal(v('session_proxy_requests_total', { profile: 'bob', status_class: '2xx' }), 1)
  t.equal(v('session_proxy_requests_total', { profile: 'bob', status_class: '5xx' }), 1)
  t.equal(v('session_proxy_requests_total', { profile: 'other', status_class: '2xx' }), 1, 'carol: beyond maxProfileLabels')
  t.equal(v('session_proxy_requests_total', { profile: 'other', status_class: '5xx' }), 1, 'dave too')
  t.equal(v('session_proxy_requests_total', { profile: 'carol' }), undefined)
  t.equal(v('session_proxy_errors_total', { code: 'SP_UPSTREAM_REFUSED' }), 1)
  t.equal(v('session_proxy_errors_total', { code: 'SP_UPSTREAM_DNS' }), 1)
  t.equal(v('session_proxy_upstream_latency_seconds_count'), 9, 'one observation per upstream response')
  t.ok(v('session_proxy_upstream_latency_seconds_sum')! > 0)
  t.equal(v('session_proxy_upstream_latency_seconds_bucket', { le: '+Inf' }), 9)
  t.ok(v('session_proxy_pool_connections', { state: 'idle' })! >= 1, 'the keep-alive connection to the upstream is idle')
  t.equal(v('session_proxy_pool_connections', { state: 'in_use' }), 0)
  t.equal(v('session_proxy_jar_cookies', { profile: 'alice' }), 1)
  t.equal(v('session_proxy_session_events_total', { profile: 'alice', type: 'session.rotated' }), 5, 'JSESSIONID changed on each later response')
  t.match(m.text, /# TYPE session_proxy_logins_total counter\n/, 'login counters are declared (filled by login runs)')
  t.match(m.text, /# TYPE session_proxy_relogins_total counter\n/)
  t.equal(v('session_proxy_info', { version: '0.1.0' }), 1)
})

t.test('the strict parser rejects what Prometheus would', async (t) => {
  const bad = [
    'x 1',
    '# TYPE x counter\nx 1\n# TYPE x counter\nx 2\n',
    '# TYPE x counter\nx{a="1} 1\n',
    '# TYPE x counter\nx -1\n',
    '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
    '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n',
    '# TYPE x gauge\nx{a="\\q"} 1\n',
    '# TYPE x gauge\nx 1\nx 2\n'
  ]
  for (const text of bad) t.throws(() => parsePrometheusStrict(text), JSON.stringify(text))
})

t.test('metrics.enabled false: no endpoint', async (t) => {
  const proxy = await startProxy({ config: { metrics: { enabled: false } } })
  t.teardown(async () => { await proxy.stop(); cleanup(proxy.dataDir) })
  const m = await scrape(proxy.url)
  t.equal(m.status, 404)
  t.match(m.text, /metrics are disabled/)
})
