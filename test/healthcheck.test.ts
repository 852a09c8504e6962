import http from 'node:http'
import { join } from 'node:path'
import t from 'tap'
import { ROOT, run, startProxy, tempDir } from './helpers/proxy.js'

const HEALTHCHECK = join(ROOT, 'dist', 'healthcheck.js')

async function healthcheck (env: Record<string, string>): Promise<{ code: number | null, out: string }> {
  const r = await run(process.execPath, [HEALTHCHECK], { env: { SESSION_PROXY_DATA_DIR: tempDir(), ...env } })
  return { code: r.code, out: r.stdout.toString('utf8') + r.stderr }
}

/** A stand-in for the proxy's health endpoint that records what it was sent. */
async function stub (host: string, status: number): Promise<{ port: number, seen: http.IncomingHttpHeaders[], urls: string[], close: () => Promise<void> }> {
  const seen: http.IncomingHttpHeaders[] = []
  const urls: string[] = []
  const server = http.createServer((req, res) => {
    seen.push(req.headers)
    urls.push(req.url ?? '')
    res.writeHead(status, { 'content-type': 'application/json' })
    res.end(status === 200 ? '{"status":"ok"}' : '{"error":"SP_ADMIN_TOKEN_REQUIRED"}')
  })
  await new Promise<void>((resolve) => server.listen(0, host, resolve))
  return { port: (server.address() as { port: number }).port, seen, urls, close: async () => await new Promise<void>((resolve) => server.close(() => resolve())) }
}

t.test('healthy: the proxy answers /_session/health on loopback', async (t) => {
  const proxy = await startProxy()
  t.teardown(() => proxy.stop())
  const r = await healthcheck({ SESSION_PROXY_HOST: '0.0.0.0', SESSION_PROXY_PORT: String(proxy.port), SESSION_PROXY_ALLOW_CLIENTS: '10.0.0.0/8' })
  t.equal(r.code, 0, r.out)
  t.match(r.out, /^healthy: \{"status":"ok"/)
})

t.test('the admin token is sent when configured, and a refusal is unhealthy', async (t) => {
  const ok = await stub('127.0.0.1', 200)
  t.teardown(() => ok.close())
  const r = await healthcheck({ SESSION_PROXY_PORT: String(ok.port), SESSION_PROXY_ADMIN_TOKEN: 'tok-123' })
  t.equal(r.code, 0, r.out)
  t.equal(ok.seen[0].authorization, 'Bearer tok-123')
  t.same(ok.urls, ['/_session/health'])
  const none = await healthcheck({ SESSION_PROXY_PORT: String(ok.port) })
  t.equal(none.code, 0)
  t.equal(ok.seen[1].authorization, undefined, 'no token configured, none sent')

  const refused = await stub('127.0.0.1', 401)
  t.teardown(() => refused.close())
  const bad = await healthcheck({ SESSION_PROXY_PORT: String(refused.port), SESSION_PROXY_ADMIN_TOKEN: 'wrong' })
  t.equal(bad.code, 1)
  t.match(bad.out, /^unhealthy: HTTP 401: .*SP_ADMIN_TOKEN_REQUIRED/)
})

t.test('a specific listen address is checked there; nothing listening is unhealthy', async (t) => {
  const other = await stub('127.0.0.2', 200)
  t.teardown(() => other.close())
  const r = await healthcheck({ SESSION_PROXY_HOST: '127.0.0.2', SESSION_PROXY_PORT: String(other.port) })
  t.equal(r.code, 0, r.out)
  await other.close()
  const down = await healthcheck({ SESSION_PROXY_HOST: '127.0.0.2', SESSION_PROXY_PORT: String(other.port) })
  t.equal(down.code, 1)
  t.match(down.out, /^unhealthy: .*ECONNREFUSED/)
})
