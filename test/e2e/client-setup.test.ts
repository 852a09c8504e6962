/**
 * The README's "Client setup" recipes, each run with the real client: the
 * proxy settings exactly as written there, then two separate runs of the
 * client, the second of which must carry the cookie the first one set (the
 * session lives in the proxy, not in the client). Clients missing on this
 * machine are skipped locally and fail under CI (.ci/run installs them).
 */
import { createHash, X509Certificate } from 'node:crypto'
import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createRequire } from 'node:module'
import t from 'tap'
import { ROOT, adminGet, cleanup, echoCookies, run, startProxy, startUpstream, tempDir, type ProxyProcess, type Upstream } from '../helpers/proxy.js'
import { createTestCa, startHttpsUpstream, type TestCa } from '../helpers/tls.js'

const CI = process.env.CI !== undefined && process.env.CI !== ''

function have (bin: string): boolean {
  return existsSync(bin)
}

/**
 * A recipe whose client is missing is skipped on a developer machine; under
 * CI it runs, and fails on the missing binary (.ci/run installs it).
 */
function missing (bin: string, pkg: string): string | false {
  return have(bin) || CI ? false : `${bin} is not installed (apt-get install ${pkg})`
}

// Proxy settings in the environment must be exactly the recipe's: drop any
// the test runner itself has.
const NO_PROXY_ENV: NodeJS.ProcessEnv = { http_proxy: '', https_proxy: '', HTTP_PROXY: '', HTTPS_PROXY: '', no_proxy: '', NO_PROXY: '', ALL_PROXY: '', all_proxy: '' }

const cookieOf = (body: string): string | null => (JSON.parse(body) as { cookie: string | null }).cookie

let proxy: ProxyProcess
let up: Upstream
let tlsUp: Upstream
let ca: TestCa
let proxyCa: string
let work: string

t.before(async () => {
  ca = createTestCa()
  up = await startUpstream(echoCookies())
  tlsUp = await startHttpsUpstream(echoCookies(), ca)
  proxy = await startProxy({ args: ['--upstream-ca', ca.file, '--connect-port', String(tlsUp.port)] })
  work = tempDir('sp-clients-')
  proxyCa = join(work, 'session-proxy-ca.pem')
  writeFileSync(proxyCa, (await adminGet(proxy, '/_session/ca.pem')).body)
})
t.teardown(async () => {
  await proxy?.stop()
  await up?.close()
  await tlsUp?.close()
  cleanup(proxy?.dataDir ?? '', work, ca?.dir ?? '')
})

/** A fresh path per recipe, so each starts without the cookie. */
function urls (name: string): { set: string, check: string } {
  const cookie = `${name}=1; Path=/${name}`
  return { set: `${up.origin}/${name}/login?set=${encodeURIComponent(cookie)}`, check: `${up.origin}/${name}/account` }
}

t.test('curl: -x, and a profile as the proxy user', async (t) => {
  const u = urls('curl')
  const x = `http://127.0.0.1:${proxy.port}`
  await run('curl', ['-s', '-x', x, u.set], { env: NO_PROXY_ENV })
  const r = await run('curl', ['-s', '-x', x, u.check], { env: NO_PROXY_ENV })
  t.equal(cookieOf(r.stdout.toString()), 'curl=1', 'the second curl run is in the session')
  const alice = await run('curl', ['-s', '-x', `http://alice@127.0.0.1:${proxy.port}`, u.check], { env: NO_PROXY_ENV })
  t.equal(cookieOf(alice.stdout.toString()), null, 'profile alice has its own jar')
  const https = await run('curl', ['-s', '-x', x, '--cacert', proxyCa, `${tlsUp.origin}/curl/login?set=${encodeURIComponent('tls=1; Secure; Path=/')}`], { env: NO_PROXY_ENV })
  t.equal(https.code, 0, https.stderr)
  const again = await run('curl', ['-s', '-x', x, '--cacert', proxyCa, `${tlsUp.origin}/curl/account`], { env: NO_PROXY_ENV })
  t.equal(cookieOf(again.stdout.toString()), 'tls=1', 'https through the proxy CA keeps the session')
})

t.test('wget: the proxy from the environment', { skip: missing('/usr/bin/wget', 'wget') }, async (t) => {
  const u = urls('wget')
  const env = { ...NO_PROXY_ENV, http_proxy: `http://127.0.0.1:${proxy.port}` }
  await run('wget', ['-q', '-O', '-', u.set], { env })
  const r = await run('wget', ['-q', '-O', '-', u.check], { env })
  t.equal(cookieOf(r.stdout.toString()), 'wget=1')
})

t.test('HTTPie: --proxy', { skip: missing('/usr/bin/http', 'httpie') }, async (t) => {
  const u = urls('httpie')
  const args = ['--ignore-stdin', '--body', `--proxy=http:http://127.0.0.1:${proxy.port}`, 'GET']
  await run('http', [...args, u.set], { env: NO_PROXY_ENV })
  const r = await run('http', [...args, u.check], { env: NO_PROXY_ENV })
  t.equal(cookieOf(r.stdout.toString()), 'httpie=1', r.stderr)
})

t.test('Python requests: HTTP_PROXY and REQUESTS_CA_BUNDLE', { skip: missing('/usr/bin/python3', 'python3-requests') }, async (t) => {
  const u = urls('python')
  const x = `http://127.0.0.1:${proxy.port}`
  // Python reads both spellings, and a set lowercase one wins even when empty.
  const env = { ...NO_PROXY_ENV, HTTP_PROXY: x, HTTPS_PROXY: x, http_proxy: x, https_proxy: x, REQUESTS_CA_BUNDLE: proxyCa }
  const script = 'import sys, requests\nfor u in sys.argv[1:]:\n    r = requests.get(u)\nprint(r.text)\n'
  const r = await run('/usr/bin/python3', ['-c', script, u.set, `${tlsUp.origin}/python/login?set=${encodeURIComponent('ptls=1; Secure; Path=/python')}`], { env })
  t.equal(r.code, 0, r.stderr)
  const again = await run('/usr/bin/python3', ['-c', script, u.check], { env })
  t.equal(cookieOf(again.stdout.toString()), 'python=1', 'a second python process is in the session')
  const tls = await run('/usr/bin/python3', ['-c', script, `${tlsUp.origin}/python/account`], { env })
  t.match(cookieOf(tls.stdout.toString()), /(^|; )ptls=1(;|$)/, 'https through the proxy CA (REQUESTS_CA_BUNDLE) is in the session too')
})

t.test('Node: undici ProxyAgent, fetch, and EnvHttpProxyAgent', async (t) => {
  const u = urls('node')
  // proxyTunnel: false sends http:// requests in absolute form; undici's
  // default would tunnel them with CONNECT to port 80.
  const undici = createRequire(join(ROOT, 'package.json')).resolve('undici')
  const script = `
const { ProxyAgent, EnvHttpProxyAgent, fetch } = await import(${JSON.stringify(undici)})
const [mode, ...targets] = process.argv.slice(2)
const dispatcher = mode === 'env' ? new EnvHttpProxyAgent({ proxyTunnel: false }) : new ProxyAgent({ uri: 'http://127.0.0.1:${proxy.port}', proxyTunnel: false })
let body
for (const url of targets) body = await (await fetch(url, { dispatcher })).text()
console.log(body)
`
  const file = join(work, 'fetch.mjs')
  writeFileSync(file, script)
  const direct = await run(process.execPath, [file, 'agent', u.set, u.check], { env: NO_PROXY_ENV })
  t.equal(cookieOf(direct.stdout.toString()), 'node=1', direct.stderr)
  const env = { ...NO_PROXY_ENV, http_proxy: `http://127.0.0.1:${proxy.port}` }
  const fromEnv = await run(process.execPath, [file, 'env', u.check], { env })
  t.equal(cookieOf(fromEnv.stdout.toString()), 'node=1', `EnvHttpProxyAgent reads http_proxy: ${fromEnv.stderr}`)
  // Node 20's own fetch ignores the environment (NODE_USE_ENV_PROXY came in later lines).
  const plain = await run(process.execPath, ['-e', `fetch(${JSON.stringify(u.check)}).then(r => r.text()).then(console.log)`], { env: { ...env, NODE_USE_ENV_PROXY: '1' } })
  if (Number(process.versions.node.split('.')[0]) < 24) t.equal(cookieOf(plain.stdout.toString()), null, 'Node 20 fetch without a dispatcher goes direct')
})

t.test('Java: -Dhttp.proxyHost with an empty nonProxyHosts, keytool for https', { skip: missing('/usr/bin/javac', 'openjdk-17-jdk-headless') }, async (t) => {
  const src = join(work, 'Fetch.java')
  writeFileSync(src, `
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.net.ProxySelector;
public class Fetch {
  public static void main(String[] args) throws Exception {
    HttpClient client = HttpClient.newBuilder().proxy(ProxySelector.getDefault()).build();
    String body = "";
    for (String u : args) body = client.send(HttpRequest.newBuilder(URI.create(u)).build(), HttpResponse.BodyHandlers.ofString()).body();
    System.out.println(body);
  }
}
`)
  const store = join(work, 'session-proxy.jks')
  const k = await run('keytool', ['-importcert', '-noprompt', '-alias', 'session-proxy', '-file', proxyCa, '-keystore', store, '-storepass', 'changeit'])
  t.equal(k.code, 0, k.stderr)
  const props = [
    '-Dhttp.proxyHost=127.0.0.1', `-Dhttp.proxyPort=${proxy.port}`,
    '-Dhttps.proxyHost=127.0.0.1', `-Dhttps.proxyPort=${proxy.port}`,
    '-Dhttp.nonProxyHosts=',
    `-Djavax.net.ssl.trustStore=${store}`, '-Djavax.net.ssl.trustStorePassword=changeit'
  ]
  const u = urls('java')
  const first = await run('java', [...props, src, u.set], { env: NO_PROXY_ENV, timeoutMs: 60_000 })
  t.equal(first.code, 0, first.stderr)
  const r = await run('java', [...props, src, u.check, `${tlsUp.origin}/java/login?set=${encodeURIComponent('jtls=1; Secure; Path=/')}`, `${tlsUp.origin}/java/account`], { env: NO_PROXY_ENV, timeoutMs: 60_000 })
  t.equal(r.code, 0, r.stderr)
  t.match(cookieOf(r.stdout.toString()), /(^|; )jtls=1(;|$)/, 'https inside the intercepted tunnel is in the session')
  t.equal(cookieOf((await run('java', [...props, src, u.check], { env: NO_PROXY_ENV, timeoutMs: 60_000 })).stdout.toString()), 'java=1', 'a loopback target goes through the proxy')
})

t.test('Chromium: --proxy-server, <-loopback>, the CA trusted by its SPKI hash', { skip: missing('/usr/bin/chromium', 'chromium') }, async (t) => {
  const { chromium } = await import('playwright-core')
  const spki = createHash('sha256').update(new X509Certificate(await (await fetch(`${proxy.url}/_session/ca.pem`)).text()).publicKey.export({ type: 'spki', format: 'der' })).digest('base64')
  const profileDir = tempDir('sp-chromium-')
  const browser = await chromium.launchPersistentContext(profileDir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync',
      `--proxy-server=http://127.0.0.1:${proxy.port}`,
      '--proxy-bypass-list=<-loopback>',
      `--ignore-certificate-errors-spki-list=${spki}`
    ]
  })
  t.teardown(async () => { await browser.close(); cleanup(profileDir) })
  const page = browser.pages()[0] ?? await browser.newPage()
  const u = urls('chromium')
  await page.goto(u.set)
  // With the browser's own cookies cleared, what it sends comes from the proxy.
  await browser.clearCookies()
  await page.goto(u.check)
  t.equal(cookieOf(await page.innerText('body')), 'chromium=1', 'the page was loaded through the proxy, in its session')
  await page.goto(`${tlsUp.origin}/chromium/login?set=${encodeURIComponent('ctls=1; Secure; Path=/chromium/x')}`)
  await browser.clearCookies()
  const resp = await page.goto(`${tlsUp.origin}/chromium/x`)
  t.equal(resp?.status(), 200, 'https through the proxy CA, trusted by SPKI')
  t.match(await page.innerText('body'), /ctls=1/)
})
