/**
 * The held-response path (a response whose Set-Cookie changes the jar waits
 * for the journal write) through a real upstream proxy, tinyproxy and squid:
 * exactly as direct. And errors that name the hop that failed.
 */
import { writeFileSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { adminGet, cleanup, curl, startProxy, startUpstream, tempDir, type ProxyProcess, type Upstream, type UpstreamHandler } from '../helpers/proxy.js'
import { answer, startRawUpstream } from '../helpers/raw-upstream.js'
import { hasSquid, startSquid } from '../helpers/squid.js'
import { hasTinyproxy, startTinyproxy } from '../helpers/tinyproxy.js'
import { createTestCa, startHttpsUpstream } from '../helpers/tls.js'

const errorCode = (head: string): string | undefined => /x-session-proxy-error: (\S+)/i.exec(head)?.[1]

/** A login that redirects: every POST /login sets a new session cookie. */
function loginApp (): UpstreamHandler {
  let n = 0
  return (req, res) => {
    const path = new URL(req.url!, 'http://x').pathname
    if (path === '/login') {
      n++
      res.writeHead(302, 'Found', ['Location', '/home', 'Set-Cookie', `sid=s${n}; Path=/; HttpOnly`, 'Content-Length', '0'])
      res.end()
    } else if (path === '/big') {
      n++
      const body = 'x'.repeat(1 << 20)
      res.writeHead(200, 'Fine Thanks', ['Set-Cookie', `big=b${n}; Path=/`, 'Content-Type', 'text/plain', 'Content-Length', String(body.length)])
      res.end(body)
    } else {
      res.writeHead(200, ['Content-Type', 'application/json'])
      res.end(JSON.stringify({ cookie: req.headers.cookie ?? null, multi: req.headers['x-multi'] ?? null }))
    }
  }
}

/** The same checks through whichever chain `proxy` uses. */
async function heldResponseChecks (t: Test, proxy: ProxyProcess, app: Upstream, label: string, repeatedHeaders = true): Promise<void> {
  const login = await curl(['-i', '-x', proxy.url, '-X', 'POST', `${app.origin}/login`])
  t.equal(login.status, 302, `${label}: the 302 keeps its status`)
  t.match(login.stdout, /\r\nLocation: \/home\r\n/i, `${label}: and its Location`)
  t.match(login.stdout, /\r\nSet-Cookie: sid=s\d+; Path=\/; HttpOnly\r\n/i, `${label}: and its Set-Cookie`)
  const sid = /sid=(s\d+)/.exec(login.stdout)?.[1]

  const home = await curl(['-x', proxy.url, `${app.origin}/home`])
  t.equal(home.status, 200)
  t.equal((JSON.parse(home.stdout) as { cookie: string }).cookie, `sid=${sid!}`, `${label}: the session cookie is sent on`)

  const big = await curl(['-i', '-x', proxy.url, `${app.origin}/big`])
  t.equal(big.status, 200, `${label}: a held response with a large body`)
  t.match(big.stdout, /\r\nSet-Cookie: big=b\d+/i)
  t.equal(big.stdout.length - big.stdout.indexOf('\r\n\r\n') - 4, 1 << 20, `${label}: the whole body, after the head`)

  // tinyproxy itself keeps only the first of repeated request headers.
  if (!repeatedHeaders) return
  const multi = await curl(['-x', proxy.url, '-H', 'X-Multi: a', '-H', 'X-Multi: b', `${app.origin}/echo`])
  t.equal((JSON.parse(multi.stdout) as { multi: string }).multi, 'a, b', `${label}: repeated request headers all arrive`)
}

t.test('held responses through tinyproxy', { skip: hasTinyproxy() || process.env.CI !== undefined ? false : 'tinyproxy is not installed (apt-get install tinyproxy)' }, async (t) => {
  const app = await startUpstream(loginApp())
  const tiny = await startTinyproxy({ user: 'chain', password: 's3cret' })
  const proxy = await startProxy({ args: ['--upstream-proxy', `http://chain:s3cret@127.0.0.1:${tiny.port}`] })
  t.teardown(async () => { await proxy.stop(); await tiny.stop(); await app.close(); cleanup(proxy.dataDir, tiny.dir) })
  await heldResponseChecks(t, proxy, app, 'tinyproxy', false)
  t.match(tiny.log(), new RegExp(`POST ${app.origin}/login HTTP`), 'it went through tinyproxy')
  t.match(app.requests.at(-1)!.headers.via ?? '', /tinyproxy/)
})

t.test('held responses through squid', { skip: hasSquid() || process.env.CI !== undefined ? false : 'squid is not installed (apt-get install squid)' }, async (t) => {
  const app = await startUpstream(loginApp())
  const squid = await startSquid()
  const proxy = await startProxy({ args: ['--upstream-proxy', squid.url] })
  t.teardown(async () => { await proxy.stop(); await squid.stop(); await app.close(); cleanup(proxy.dataDir, squid.dir) })
  await heldResponseChecks(t, proxy, app, 'squid')
  t.match(app.requests.at(-1)!.headers.via ?? '', /squid/, 'it went through squid')
})

t.test('held responses direct, for comparison', async (t) => {
  const app = await startUpstream(loginApp())
  const proxy = await startProxy()
  t.teardown(async () => { await proxy.stop(); await app.close(); cleanup(proxy.dataDir) })
  await heldResponseChecks(t, proxy, app, 'direct')
})

async function closedPort (): Promise<number> {
  return await new Promise((resolve, reject) => {
    const s = net.createServer()
    s.once('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port
      s.close(() => resolve(port))
    })
  })
}

t.test('a dead upstream proxy is reported as the upstream proxy failing, not the target', async (t) => {
  const ca = createTestCa()
  const app = await startUpstream(loginApp())
  const secure = await startHttpsUpstream(loginApp(), ca)
  const deadPort = await closedPort()
  const proxy = await startProxy({ args: ['--upstream-proxy', `http://127.0.0.1:${deadPort}`, '--upstream-ca', ca.file, '--connect-port', String(secure.port)] })
  const caFile = join(tempDir('sp-cacert-'), 'proxy-ca.pem')
  writeFileSync(caFile, (await adminGet(proxy, '/_session/ca.pem')).body)
  t.teardown(async () => { await proxy.stop(); await app.close(); await secure.close(); cleanup(proxy.dataDir, ca.dir) })

  const plain = await curl(['-i', '-x', proxy.url, `${app.origin}/home`])
  t.equal(plain.status, 502, 'http: 502')
  t.equal(errorCode(plain.stdout), 'SP_UPSTREAM_PROXY_UNREACHABLE', 'http: the proxy hop')
  t.match(plain.stdout, new RegExp(`upstream proxy 127\\.0\\.0\\.1:${deadPort}`), 'http: naming the proxy')

  const https = await curl(['-i', '-x', proxy.url, '--cacert', caFile, `${secure.origin}/home`])
  t.equal(https.status, 502, 'https: 502')
  t.equal(errorCode(https.stdout), 'SP_UPSTREAM_PROXY_UNREACHABLE', 'https: the proxy hop')
  t.match(https.stdout, new RegExp(`upstream proxy 127\\.0\\.0\\.1:${deadPort}`), 'https: naming the proxy')
  t.equal(app.requests.length + secure.requests.length, 0, 'nothing reached the targets')
})

t.test('a 407 from the upstream proxy on plain http is the proxy refusing, not a 407 for the client', async (t) => {
  // A raw "proxy" that refuses every request the way squid does (tinyproxy answers 401 instead).
  const refusing = await startRawUpstream(answer('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm="chain"\r\nContent-Length: 6\r\n\r\ndenied'))
  const app = await startUpstream(loginApp())
  const proxy = await startProxy({ args: ['--upstream-proxy', `http://chain:wrong@127.0.0.1:${refusing.port}`] })
  t.teardown(async () => { await proxy.stop(); await refusing.close(); await app.close(); cleanup(proxy.dataDir) })
  const r = await curl(['-i', '-x', proxy.url, `${app.origin}/home`])
  t.equal(r.status, 502)
  t.equal(errorCode(r.stdout), 'SP_UPSTREAM_PROXY')
  t.match(r.stdout, new RegExp(`upstream proxy 127\\.0\\.0\\.1:${refusing.port} answered 407`))
  t.notMatch(r.stdout, /proxy-authenticate|denied/i, 'the client is not asked to authenticate')
  t.match(refusing.requests[0]?.head ?? '', /^GET http:\/\/127\.0\.0\.1:\d+\/home HTTP\/1\.1\r\n/, 'absolute form')
  t.match(refusing.requests[0]?.head ?? '', /\r\nproxy-authorization: Basic /i, 'with the configured credentials')
  t.equal(app.requests.length, 0, 'nothing reached the target')
})
