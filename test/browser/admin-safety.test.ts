/**
 * Admin API safety in a real browser (Debian's Chromium, headless): a page of
 * another origin cannot log in, clear or delete through the admin API (simple
 * POST, form POST, DELETE); a page reached under a rebound name (attacker.example
 * resolving to 127.0.0.1) cannot read the jar; and the proxy's own page works
 * with an admin token: it asks for it, sends it, and polls the timeline.
 */
import { existsSync, readFileSync } from 'node:fs'
import http from 'node:http'
import { chromium, type BrowserContext } from 'playwright-core'
import t from 'tap'
import { cleanup, startProxy, startUpstream, tempDir, viaProxy, type ProxyProcess, type Upstream } from '../helpers/proxy.js'

const CHROMIUM = '/usr/bin/chromium'
const TOKEN = 'browser-admin-token-0123456789'

if (!existsSync(CHROMIUM)) {
  t.fail(`${CHROMIUM} is missing: .ci/run installs it (apt-get install chromium)`)
} else {
  let up: Upstream
  let proxy: ProxyProcess
  let tokenProxy: ProxyProcess
  let evil: http.Server
  let evilPort = 0
  let browser: BrowserContext
  const profileDir = tempDir('sp-chromium-')
  const logins = (): number => up.requests.filter((r) => r.url === '/api/login').length

  t.before(async () => {
    up = await startUpstream((req, res) => {
      if (req.url === '/api/login') { res.writeHead(200, { 'content-type': 'application/json' }); res.end('{"token":"t"}'); return }
      const set = new URL(req.url!, 'http://x').searchParams.get('set')
      res.writeHead(200, set === null ? {} : { 'set-cookie': set })
      res.end('ok')
    })
    const profiles = { alice: { autopilot: [{ match: `127.0.0.1:${up.port}`, login: { preset: 'json-token', username: 'alice', password: { value: 'pw' } } }] } }
    proxy = await startProxy({ config: { profiles } })
    tokenProxy = await startProxy({ config: { profiles, admin: { token: { value: TOKEN } } } })
    for (const p of [proxy, tokenProxy]) {
      await viaProxy(p.port, `${up.origin}/?set=${encodeURIComponent('sid=SECRET; Path=/')}`, { headers: { 'x-session-profile': 'alice' } })
    }
    // The hostile page: another origin on this machine.
    evil = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/html' })
      res.end('<!doctype html><title>evil</title><form id="f" method="POST" enctype="text/plain" action="' + `${proxy.url}/_session/profiles/alice/login` + '"><input name="a" value="b"></form>')
    })
    await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve))
    evilPort = (evil.address() as { port: number }).port
    browser = await chromium.launchPersistentContext(profileDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync', '--host-resolver-rules=MAP attacker.example 127.0.0.1']
    })
  })
  t.teardown(async () => {
    await browser?.close()
    for (const p of [proxy, tokenProxy]) { await p?.stop(); if (p !== undefined) cleanup(p.dataDir) }
    await up?.close()
    evil?.closeAllConnections()
    evil?.close()
    cleanup(profileDir)
  })

  const jar = async (p: ProxyProcess, headers: Record<string, string> = {}): Promise<string> => await (await fetch(`${p.url}/_session/profiles/alice/cookies`, { headers })).text()

  t.test('a page of another origin cannot change sessions', async (t) => {
    const page = await browser.newPage()
    t.teardown(async () => { await page.close() })
    await page.goto(`http://127.0.0.1:${evilPort}/`)
    // A string, not a function: the test's TypeScript transform would add helpers the page lacks.
    const results = await page.evaluate(`(async (base) => {
      const out = []
      const tryFetch = async (what, url, init) => {
        try { const r = await fetch(url, init); out.push(what + ': ' + r.type + ' ' + r.status) } catch (e) { out.push(what + ': blocked ' + e.name) }
      }
      await tryFetch('simple POST', base + '/_session/profiles/alice/login', { method: 'POST', mode: 'no-cors', headers: { 'content-type': 'text/plain' }, body: 'x' })
      await tryFetch('POST with the header', base + '/_session/profiles/alice/login', { method: 'POST', headers: { 'x-session-proxy-admin': '1' } })
      await tryFetch('DELETE', base + '/_session/profiles/alice/cookies', { method: 'DELETE' })
      await tryFetch('read', base + '/_session/profiles/alice/cookies', {})
      return out
    })(${JSON.stringify(proxy.url)})`) as string[]
    t.match(results, [/^simple POST: opaque 0$/, /^POST with the header: blocked/, /^DELETE: blocked/, /^read: blocked/], 'only the simple POST leaves the browser, and its answer is opaque')
    await Promise.all([page.waitForNavigation(), page.evaluate(() => { (document.getElementById('f') as HTMLFormElement).submit() })])
    t.match(await page.content(), 'SP_ADMIN_ORIGIN', 'a form POST is refused for its Origin')
    t.equal(logins(), 0, 'no login ran')
    t.match(await jar(proxy), 'SECRET', 'the jar is intact')
  })

  t.test('a page under a rebound name cannot read the jar', async (t) => {
    const page = await browser.newPage()
    t.teardown(async () => { await page.close() })
    const response = await page.goto(`http://attacker.example:${proxy.port}/_session/`)
    t.equal(response?.status(), 421)
    const read = await page.evaluate(async () => {
      const r = await fetch('/_session/profiles/alice/cookies')
      return `${r.status} ${await r.text()}`
    })
    t.match(read, /^421 .*SP_ADMIN_HOST/)
    t.notMatch(read, 'SECRET')
  })

  t.test('the proxy\'s own page with an admin token: asks once, sends it, polls the timeline', async (t) => {
    const page = await browser.newPage()
    t.teardown(async () => { await page.close() })
    const prompts: string[] = []
    page.on('dialog', (d) => { prompts.push(d.type()); void d.accept(d.type() === 'prompt' ? TOKEN : undefined) })
    await page.goto(`${tokenProxy.url}/_session/#alice`)
    await page.waitForSelector('.profile[data-profile="alice"].active')
    t.same(prompts, ['prompt'], 'asked for the token once')
    await page.waitForFunction(() => document.getElementById('status')?.textContent === 'live (polling)')
    await page.locator('#jar tbody tr[data-cookie="sid"]').waitFor()
    await viaProxy(tokenProxy.port, `${up.origin}/?set=${encodeURIComponent('theme=dark; Path=/')}`, { headers: { 'x-session-profile': 'alice' } })
    await page.locator('#timeline .event[data-type="cookie.set"]').filter({ hasText: 'theme' }).waitFor({ timeout: 10_000 })
    await page.locator('#jar tbody tr[data-cookie="theme"] button.delete').click()
    await page.locator('#jar tbody tr[data-cookie="theme"]').waitFor({ state: 'detached' })
    t.notMatch(await jar(tokenProxy, { authorization: `Bearer ${TOKEN}` }), '"theme"', 'deleted with the token')
    t.match(await jar(tokenProxy, { authorization: `Bearer ${TOKEN}` }), 'SECRET')
    // A plain link cannot send the token: the page downloads through fetch.
    const downloading = page.waitForEvent('download')
    await page.click('#cookies-export')
    const download = await downloading
    t.equal(download.suggestedFilename(), 'alice.cookies.txt')
    t.match(readFileSync((await download.path())!, 'utf8'), /\tsid\tSECRET/, 'cookies.txt exported with the token')
    t.equal(prompts.length, 1, 'not asked again')
  })
}
