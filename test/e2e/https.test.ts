import { statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { adminGet, cleanup, curl, echoCookies, run, runCli, startProxy, startUpstream, tempDir, type ProxyProcess } from '../helpers/proxy.js'
import { createTestCa, startHttpsUpstream } from '../helpers/tls.js'

/** Fetches the proxy's CA from the admin API into a file for --cacert. */
async function proxyCaFile (proxy: ProxyProcess): Promise<string> {
  const r = await adminGet(proxy, '/_session/ca.pem')
  const file = join(tempDir('sp-cacert-'), 'proxy-ca.pem')
  writeFileSync(file, r.body)
  return file
}

const cookieOf = (stdout: string): string | null => (JSON.parse(stdout) as { cookie: string | null }).cookie

t.test('intercepted HTTPS keeps a session across curl runs', async (t) => {
  const ca = createTestCa()
  const up = await startHttpsUpstream(echoCookies(), ca)
  const plain = await startUpstream(echoCookies())
  const proxy = await startProxy({ args: ['--upstream-ca', ca.file, '--connect-port', String(up.port), '--connect-port', String(plain.port)] })
  const cacert = await proxyCaFile(proxy)
  t.teardown(async () => { await proxy.stop(); await up.close(); await plain.close(); cleanup(proxy.dataDir, ca.dir) })

  t.test('the CA', async (t) => {
    const pem = (await adminGet(proxy, '/_session/ca.pem'))
    t.equal(pem.status, 200)
    t.match(pem.body, /^-----BEGIN CERTIFICATE-----\n/)
    const cli = runCli(['ca', '--data-dir', proxy.dataDir])
    t.equal(cli.status, 0, cli.stderr)
    t.equal(cli.stdout, pem.body, '`session-proxy ca` prints the same certificate')
    t.equal(statSync(join(proxy.dataDir, 'ca', 'ca.key')).mode & 0o777, 0o600, 'the CA key is readable by its owner only')
    const check = await run('openssl', ['verify', '-x509_strict', '-CAfile', cacert, cacert])
    t.match(check.stdout.toString(), /OK/, 'openssl accepts the CA in strict mode')
  })

  const x = ['-x', proxy.url, '--cacert', cacert]
  // --http1.1: since HTTP/2 is offered too (test/e2e/http2.test.ts), curl's default would pick h2.
  const first = await curl([...x, '-v', '--http1.1', `${up.origin}/login?set=${encodeURIComponent('JSESSIONID=S1; Path=/; HttpOnly')}&set=${encodeURIComponent('sec=1; Secure; Path=/')}`])
  t.equal(first.status, 200, 'status 200', { stderr: first.stderr.slice(-400) })
  t.equal(cookieOf(first.stdout), null)
  t.match(first.stderr, /issuer: O=session-proxy; CN=session-proxy CA/, 'the client sees a certificate minted by the proxy CA')
  t.match(first.stderr, /ALPN[^\n]*accepted[^\n]*http\/1\.1/, 'ALPN settles on http/1.1')

  const second = await curl([...x, `${up.origin}/api`])
  t.equal(second.status, 200)
  t.equal(cookieOf(second.stdout), 'JSESSIONID=S1; sec=1', 'a separate curl run is in the session, Secure cookie included over https')
  t.equal(up.requests.at(-1)!.headers.host, `localhost:${up.port}`, 'Host is the CONNECT authority')
  t.notOk(up.requests.at(-1)!.headers['proxy-authorization'])

  const overHttp = await curl(['-x', proxy.url, `http://localhost:${plain.port}/`])
  t.equal(cookieOf(overHttp.stdout), 'JSESSIONID=S1', 'the Secure cookie is never sent over http')

  const jar = await adminGet(proxy, '/_session/profiles/default/cookies')
  t.match(jar.json, { cookies: [{ name: 'JSESSIONID', secure: false }, { name: 'sec', secure: true }] })

  t.test('the CONNECT user is the profile of every request in the tunnel', async (t) => {
    const host = new URL(proxy.url).host
    await curl(['-x', `http://alice@${host}`, '--cacert', cacert, `${up.origin}/?set=sid%3Dalice`])
    const again = await curl(['-x', `http://alice@${host}`, '--cacert', cacert, `${up.origin}/`])
    t.equal(cookieOf(again.stdout), 'sid=alice')
    const inner = await curl([...x, '-H', 'X-Session-Profile: alice', `${up.origin}/`])
    t.equal(cookieOf(inner.stdout), 'sid=alice', 'X-Session-Profile inside the tunnel picks the profile when CONNECT named none')
    t.equal(cookieOf((await curl([...x, `${up.origin}/`])).stdout), 'JSESSIONID=S1; sec=1', 'default is untouched')
  })

  t.test('an IP address gets a certificate with an IP SAN', async (t) => {
    const r = await curl([...x, `https://127.0.0.1:${up.port}/`])
    t.equal(r.status, 200, 'status 200', { stderr: r.stderr.slice(-400) })
  })

  t.test('plain HTTP inside a CONNECT tunnel is handled too', async (t) => {
    const r = await curl(['-x', proxy.url, '--proxytunnel', `http://localhost:${plain.port}/`])
    t.equal(r.status, 200, 'status 200', { stderr: r.stderr.slice(-400) })
    t.equal(cookieOf(r.stdout), 'JSESSIONID=S1')
  })
})

t.test('upstream certificate verification', async (t) => {
  const ca = createTestCa()
  const stranger = createTestCa('unknown CA')
  const good = await startHttpsUpstream(echoCookies(), ca)
  const unknown = await startHttpsUpstream(echoCookies(), stranger)
  const wrongName = await startHttpsUpstream(echoCookies(), ca, ['other.example.test'])
  const ports = [good, unknown, wrongName].flatMap((u) => ['--connect-port', String(u.port)])
  const proxy = await startProxy({ args: ['--upstream-ca', ca.file, ...ports] })
  const cacert = await proxyCaFile(proxy)
  t.teardown(async () => { await proxy.stop(); for (const u of [good, unknown, wrongName]) await u.close(); cleanup(proxy.dataDir, ca.dir, stranger.dir) })
  const x = ['-x', proxy.url, '--cacert', cacert]

  t.equal((await curl([...x, `${good.origin}/`])).status, 200, 'a certificate from the --upstream-ca bundle verifies')

  const bad = await curl([...x, '-i', `${unknown.origin}/`])
  t.equal(bad.status, 502, 'an unknown issuer gives 502')
  t.match(bad.stdout, /x-session-proxy-error: SP_UPSTREAM_TLS/i)
  t.match(bad.stdout, new RegExp(`upstream localhost:${unknown.port}: TLS certificate verification failed: .*(unable to verify|unable to get local issuer)`), 'the body names the host and the TLS reason')

  const mismatch = await curl([...x, `${wrongName.origin}/`])
  t.equal(mismatch.status, 502)
  t.match(mismatch.stdout, /localhost.*(altnames|does not match)/i, 'a name mismatch is reported as such')

  t.test('per-host ca and insecure rules', async (t) => {
    const proxy2 = await startProxy({
      args: ports,
      config: { upstream: { tls: [{ match: `localhost:${unknown.port}`, ca: stranger.file }, { match: `localhost:${wrongName.port}`, insecure: true }] } }
    })
    const cacert2 = await proxyCaFile(proxy2)
    t.teardown(async () => { await proxy2.stop(); cleanup(proxy2.dataDir) })
    const x2 = ['-x', proxy2.url, '--cacert', cacert2]
    t.equal((await curl([...x2, `${unknown.origin}/`])).status, 200, 'a per-host CA bundle')
    t.equal((await curl([...x2, `${wrongName.origin}/`])).status, 200, 'insecure skips verification')
    t.equal((await curl([...x2, `${good.origin}/`])).status, 502, 'other hosts still verify against the system roots only')
    t.ok(proxy2.output.some((l) => l.includes('"level":40') && l.includes('NOT verified') && l.includes(`localhost:${wrongName.port}`)), 'insecure use is logged as a warning')
  })
})

t.test('excluded hosts are tunnelled untouched; other ports are refused', async (t) => {
  const ca = createTestCa()
  const up = await startHttpsUpstream(echoCookies(), ca)
  const proxy = await startProxy({ args: ['--connect-port', String(up.port), '--intercept-exclude', 'localhost'] })
  t.teardown(async () => { await proxy.stop(); await up.close(); cleanup(proxy.dataDir, ca.dir) })

  const r = await curl(['-x', proxy.url, '--cacert', ca.file, '-v', `${up.origin}/?set=tunnelled%3D1`])
  t.equal(r.status, 200, 'status 200', { stderr: r.stderr.slice(-400) })
  t.match(r.stderr, /issuer: O=session-proxy tests; CN=test upstream CA/, "the client sees the upstream's own certificate")
  const again = await curl(['-x', proxy.url, '--cacert', ca.file, `${up.origin}/`])
  t.equal(cookieOf(again.stdout), null, 'the proxy saw nothing to store')
  t.same((await adminGet(proxy, '/_session/profiles')).json, { profiles: [] }, 'no profile was even touched')

  const refused = await run('curl', ['-s', '-S', '-x', proxy.url, '--max-time', '10', '-w', '%{http_connect}', '-o', '/dev/null', 'https://localhost:1/'])
  t.equal(refused.stdout.toString(), '403', 'CONNECT to a port outside connect.allowedPorts gets 403')
  t.not(refused.code, 0)
})
