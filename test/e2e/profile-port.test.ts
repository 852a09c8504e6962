/**
 * Profile ports (issue 13): `profiles.<p>.listen` / `--profile-port p=PORT`
 * opens a loopback listener where every request is that profile, for
 * clients that cannot choose one (a browser). Also: CONNECT to port 80 is
 * allowed by default, and an intercepted tunnel that carries plain HTTP (as
 * undici's ProxyAgent sends http:// targets) is in the session.
 */
import net from 'node:net'
import { existsSync } from 'node:fs'
import t from 'tap'
import { cleanup, curl, echoCookies, freePort, startProxy, startUpstream, tempDir, viaProxy, type ProxyProcess, type Upstream } from '../helpers/proxy.js'

async function cookiesOf (proxy: ProxyProcess, profile: string): Promise<string[]> {
  const r = await fetch(`${proxy.url}/_session/profiles/${profile}/cookies`)
  const json = await r.json() as { cookies: Array<{ name: string, value: string }> }
  return json.cookies.map((c) => `${c.name}=${c.value}`)
}

let upstream: Upstream
let proxy: ProxyProcess
let alicePort: number
let bobPort: number
t.before(async () => {
  upstream = await startUpstream(echoCookies())
  alicePort = await freePort()
  bobPort = await freePort()
  proxy = await startProxy({ config: { profiles: { alice: { listen: alicePort } } }, args: ['--profile-port', `bob=${bobPort}`] })
})
t.teardown(async () => {
  await proxy.stop()
  await upstream.close()
  cleanup(proxy.dataDir)
})

t.test('curl through the alice port is alice; naming another profile there is refused', async (t) => {
  t.ok(proxy.output.some((l) => l.includes('listening for one profile') && l.includes(`:${alicePort}`)), 'the port is logged')
  const set = await curl(['-x', `http://127.0.0.1:${alicePort}`, `${upstream.origin}/?set=a%3D1`])
  t.equal(set.status, 200)
  t.same(await cookiesOf(proxy, 'alice'), ['a=1'], 'stored in alice')
  t.equal(JSON.parse((await viaProxy(proxy.port, `${upstream.origin}/`)).body).cookie, null, 'not in default (the main port)')
  t.equal(JSON.parse((await curl(['-x', `http://127.0.0.1:${alicePort}`, `${upstream.origin}/`])).stdout).cookie, 'a=1')
  t.equal(JSON.parse((await curl(['-x', `http://127.0.0.1:${bobPort}`, `${upstream.origin}/`])).stdout).cookie, null, '--profile-port bob is another session')

  const other = await curl(['-x', `http://127.0.0.1:${alicePort}`, '-H', 'X-Session-Profile: bob', '-D', '-', `${upstream.origin}/`])
  t.equal(other.status, 403)
  t.match(other.stdout, /x-session-proxy-error: SP_PROFILE_PORT/i)
  const otherUser = await curl(['-x', `http://bob@127.0.0.1:${alicePort}`, `${upstream.origin}/`])
  t.equal(otherUser.status, 403, 'a Proxy-Authorization user naming another profile too')
  const same = await curl(['-x', `http://alice@127.0.0.1:${alicePort}`, '-H', 'X-Session-Profile: alice', `${upstream.origin}/`])
  t.equal(JSON.parse(same.stdout).cookie, 'a=1', 'naming the port\'s own profile is fine')
  const tunnel = await curl(['-x', `http://127.0.0.1:${alicePort}`, '--proxy-header', 'X-Session-Profile: bob', '-p', `${upstream.origin}/`])
  t.not(tunnel.exitCode, 0, 'a CONNECT naming another profile is refused too')
  const admin = await fetch(`http://127.0.0.1:${alicePort}/_session/health`)
  t.equal(admin.status, 200, 'the admin API answers there too, behind the same gate')
  const leaked = upstream.requests.find((r) => r.headers['x-session-profile'] !== undefined || r.headers['proxy-authorization'] !== undefined)
  t.equal(leaked, undefined, 'no profile header reaches the upstream')
})

t.test('Chromium through the alice port is alice', { skip: existsSync('/usr/bin/chromium') ? false : 'no /usr/bin/chromium' }, async (t) => {
  const { chromium } = await import('playwright-core')
  const profileDir = tempDir('sp-chromium-')
  const browser = await chromium.launchPersistentContext(profileDir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--no-first-run', '--disable-sync',
      `--proxy-server=http://127.0.0.1:${alicePort}`, '--proxy-bypass-list=<-loopback>']
  })
  t.teardown(async () => { await browser.close(); cleanup(profileDir) })
  const page = browser.pages()[0] ?? await browser.newPage()
  await page.goto(`${upstream.origin}/chromium?set=browser%3D1`)
  await browser.clearCookies()
  const body = await (await page.goto(`${upstream.origin}/chromium`))!.text()
  t.match(JSON.parse(body).cookie, /(^|; )browser=1(;|$)/, 'the browser\'s requests carry alice\'s jar')
  t.match(JSON.parse(body).cookie, /(^|; )a=1(;|$)/, 'including what curl stored for alice')
  t.ok((await cookiesOf(proxy, 'alice')).includes('browser=1'), 'what the browser received is in alice')
})

t.test('undici ProxyAgent (CONNECT for http://) reaches an http upstream in the session', async (t) => {
  const { ProxyAgent, request } = await import('undici')
  const p = await startProxy({ args: ['--connect-port', String(upstream.port)] })
  t.teardown(async () => { await p.stop(); cleanup(p.dataDir) })
  const agent = new ProxyAgent({ uri: p.url, token: `Basic ${Buffer.from('nodeuser:').toString('base64')}` })
  t.teardown(async () => { await agent.close() })
  const first = await request(`${upstream.origin}/undici?set=u%3D1`, { dispatcher: agent })
  await first.body.text()
  t.equal(first.statusCode, 200)
  const again = await request(`${upstream.origin}/undici`, { dispatcher: agent })
  t.equal((await again.body.json() as { cookie: string }).cookie, 'u=1', 'the tunnelled plain HTTP is in the session')
  t.same(await cookiesOf(p, 'nodeuser'), ['u=1'], 'in the profile the CONNECT named')
})

t.test('CONNECT to port 80 is allowed by default', async (t) => {
  const p = await startProxy({ args: ['--no-intercept'] })
  t.teardown(async () => { await p.stop(); cleanup(p.dataDir) })
  const status = async (target: string): Promise<string> => await new Promise((resolve, reject) => {
    const s = net.connect(p.port, '127.0.0.1', () => s.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`))
    let buf = ''
    s.on('data', (c: Buffer) => { buf += c.toString('latin1'); if (buf.includes('\r\n')) { s.destroy(); resolve(buf.split('\r\n')[0]!) } })
    s.on('error', reject)
    s.on('close', () => resolve(buf.split('\r\n')[0]!))
  })
  t.notMatch(await status('127.0.0.1:80'), /403/, 'port 80 is not refused')
  t.match(await status('127.0.0.1:81'), /403/, 'other ports still are')
})

t.test('a profile port already in use is a clear start-up error', async (t) => {
  const { runCli } = await import('../helpers/proxy.js')
  const dataDir = tempDir()
  const r = runCli(['--data-dir', dataDir, '--port', '0', '--profile-port', `carol=${alicePort}`])
  cleanup(dataDir)
  t.not(r.status, 0)
  t.match(r.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${alicePort} for profile "carol".*already in use`))
  t.match(runCli(['--profile-port', 'nonsense']).stderr, /use PROFILE=PORT/)
})
