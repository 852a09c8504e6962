import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { adminGet, cleanup, curl, echoCookies, startProxy, startUpstream, tempDir } from '../helpers/proxy.js'
import { hasTinyproxy, startTinyproxy } from '../helpers/tinyproxy.js'
import { createTestCa, startHttpsUpstream } from '../helpers/tls.js'

const cookieOf = (stdout: string): string | null => (JSON.parse(stdout) as { cookie: string | null }).cookie

// In CI a missing tinyproxy is a failure (.ci/run installs it), not a skip.
t.test('upstream traffic goes through a real second proxy (tinyproxy) with auth', { skip: hasTinyproxy() || process.env.CI !== undefined ? false : 'tinyproxy is not installed (apt-get install tinyproxy)' }, async (t) => {
  const ca = createTestCa()
  const plain = await startUpstream(echoCookies())
  const secure = await startHttpsUpstream(echoCookies(), ca)
  const tiny = await startTinyproxy({ user: 'chain', password: 's3cret' })
  const proxy = await startProxy({ args: ['--upstream-proxy', `http://chain:s3cret@127.0.0.1:${tiny.port}`, '--upstream-ca', ca.file, '--connect-port', String(secure.port)] })
  const caFile = join(tempDir('sp-cacert-'), 'proxy-ca.pem')
  writeFileSync(caFile, (await adminGet(proxy, '/_session/ca.pem')).body)
  t.teardown(async () => { await proxy.stop(); await tiny.stop(); await plain.close(); await secure.close(); cleanup(proxy.dataDir, ca.dir, tiny.dir) })

  await curl(['-x', proxy.url, `${plain.origin}/?set=p%3D1`])
  const r = await curl(['-x', proxy.url, `${plain.origin}/again`])
  t.equal(r.status, 200)
  t.equal(cookieOf(r.stdout), 'p=1', 'the session works through the chain')
  t.match(plain.requests.at(-1)!.headers.via, /tinyproxy/, 'http went through tinyproxy')
  t.match(tiny.log(), new RegExp(`GET ${plain.origin}/again HTTP`), 'in absolute form')

  await curl(['-x', proxy.url, '--cacert', caFile, `${secure.origin}/?set=${encodeURIComponent('s=1; Secure')}`])
  const s = await curl(['-x', proxy.url, '--cacert', caFile, `${secure.origin}/again`])
  t.equal(s.status, 200, 'intercepted https through the chain', { stderr: s.stderr })
  t.equal(cookieOf(s.stdout), 's=1')
  t.match(tiny.log(), new RegExp(`CONNECT localhost:${secure.port} HTTP`), 'https went through tinyproxy by CONNECT')
  t.notOk(secure.requests.at(-1)!.headers['proxy-authorization'], 'the chain credentials never reach the upstream')

  t.test('wrong credentials for the upstream proxy give an error, not a silent bypass', async (t) => {
    const bad = await startProxy({ args: ['--upstream-proxy', `http://chain:wrong@127.0.0.1:${tiny.port}`, '--upstream-ca', ca.file, '--connect-port', String(secure.port)] })
    t.teardown(async () => { await bad.stop(); cleanup(bad.dataDir) })
    const badCa = join(tempDir('sp-cacert-'), 'proxy-ca.pem')
    writeFileSync(badCa, (await adminGet(bad, '/_session/ca.pem')).body)
    const before = secure.requests.length
    const res = await curl(['-x', bad.url, '--cacert', badCa, `${secure.origin}/`])
    t.equal(res.status, 502)
    t.match(res.stdout, /407|401|Proxy/, 'the message names the proxy refusal')
    t.equal(secure.requests.length, before, 'nothing reached the upstream')
  })

  t.test('HTTP_PROXY / NO_PROXY from the environment', async (t) => {
    const envProxy = await startProxy({ env: { HTTP_PROXY: `http://chain:s3cret@127.0.0.1:${tiny.port}`, NO_PROXY: 'localhost' } })
    t.teardown(async () => { await envProxy.stop(); cleanup(envProxy.dataDir) })
    await curl(['-x', envProxy.url, `${plain.origin}/env-proxied`])
    t.match(plain.requests.at(-1)!.headers.via, /tinyproxy/, 'HTTP_PROXY is honoured')
    await curl(['-x', envProxy.url, `http://localhost:${plain.port}/env-direct`])
    t.notMatch(plain.requests.at(-1)!.headers.via ?? '', /tinyproxy/, 'NO_PROXY hosts go direct')
    t.equal(plain.requests.at(-1)!.url, '/env-direct')
  })

  t.test('an excluded host is tunnelled through the upstream proxy too', async (t) => {
    const ex = await startProxy({ args: ['--upstream-proxy', `http://chain:s3cret@127.0.0.1:${tiny.port}`, '--connect-port', String(secure.port), '--intercept-exclude', 'localhost'] })
    t.teardown(async () => { await ex.stop(); cleanup(ex.dataDir) })
    const connects = (tiny.log().match(/CONNECT localhost/g) ?? []).length
    const res = await curl(['-x', ex.url, '--cacert', ca.file, `${secure.origin}/tunnel`])
    t.equal(res.status, 200, 'plain tunnel', { stderr: res.stderr })
    t.equal((tiny.log().match(/CONNECT localhost/g) ?? []).length, connects + 1, 'by CONNECT through tinyproxy')
  })
})
