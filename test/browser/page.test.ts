/**
 * The web page at /_session/ in a real browser: Debian's Chromium, headless,
 * driven by playwright-core. Real traffic through the proxy (a form login by
 * the autopilot, which rotates JSESSIONID) must show up live in the timeline;
 * the captured exchanges list a renewed request with its marks and redacted
 * headers, and timeline entries link to it; the jar table (delete, add and
 * edit), cookies.txt export and import, the CA link and the explain form
 * work; the timeline survives a restart; a profile is created and deleted
 * from the page; the page runs without console errors under its
 * Content-Security-Policy. The screenshot goes to a temp dir;
 * SP_UPDATE_SCREENSHOT=1 writes docs/screenshot.png (the README's) instead,
 * so a plain test run leaves the work tree unchanged.
 */
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { chromium, type BrowserContext, type Page } from 'playwright-core'
import t from 'tap'
import { ROOT, cleanup, curl, startProxy, tempDir, type ProxyProcess } from '../helpers/proxy.js'
import { startSpringLike, type SpringLikeServer } from '../helpers/spring-like.js'

const CHROMIUM = '/usr/bin/chromium'
const UPDATE = process.env.SP_UPDATE_SCREENSHOT === '1'

if (!existsSync(CHROMIUM)) {
  t.fail(`${CHROMIUM} is missing: .ci/run installs it (apt-get install chromium)`)
} else {
  let app: SpringLikeServer
  let proxy: ProxyProcess
  let browser: BrowserContext
  let page: Page
  const problems: string[] = []
  const profileDir = tempDir('sp-chromium-')
  const shotDir = UPDATE ? join(ROOT, 'docs') : tempDir('sp-screenshot-')
  const screenshot = join(shotDir, 'screenshot.png')

  t.before(async () => {
    app = await startSpringLike({ users: { alice: 'alice-pw' }, entryPoint: 'redirect-relative', homePageForm: false })
    proxy = await startProxy({ config: proxyConfig() })
    browser = await chromium.launchPersistentContext(profileDir, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync'],
      viewport: { width: 1440, height: 800 },
      deviceScaleFactor: 1
    })
    page = browser.pages()[0] ?? await browser.newPage()
    page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`) })
    page.on('pageerror', (e) => problems.push(`page error: ${e.message}`))
  })
  t.teardown(async () => {
    await browser?.close()
    await proxy?.stop()
    await app?.close()
    if (proxy !== undefined) cleanup(proxy.dataDir)
    cleanup(profileDir)
    if (!UPDATE) cleanup(shotDir)
  })

  const as = ['-x', ''] as [string, string]
  // No events settings: they persist by default.
  const proxyConfig = (): Record<string, unknown> => ({
    profiles: {
      app: {
        autopilot: [{ match: `127.0.0.1:${app.port}`, login: { preset: 'spring-form', username: 'alice', password: { value: 'alice-pw' } }, csrf: [{ preset: 'spring' }] }],
        capture: { enabled: true }
      }
    }
  })

  t.test('the page loads from the package, with the profiles and a live timeline', async (t) => {
    as[1] = `http://app@127.0.0.1:${proxy.port}`
    const response = await page.goto(`${proxy.url}/_session/#app`)
    t.equal(response?.status(), 200)
    t.match(response?.headers()['content-security-policy'], /script-src 'self'/)
    await page.waitForSelector('.profile[data-profile="app"].active')
    await page.waitForSelector('#live.on', { timeout: 10_000 })
    t.equal(await page.textContent('#status'), 'live')
  })

  t.test('a login and a JSESSIONID rotation appear in the timeline as they happen', async (t) => {
    const me = await curl([...as, `${app.origin}/api/me`])
    t.equal(me.status, 200, me.stdout)
    await curl([...as, `${app.origin}/`])
    await curl([...as, `${app.origin}/api/prefs`])
    await curl([...as, '-d', 'name=demo', `${app.origin}/api/items`])

    const rotated = page.locator('#timeline .event[data-type="session.rotated"]')
    await rotated.first().waitFor({ timeout: 10_000 })
    t.match(await rotated.first().textContent(), /JSESSIONID rotated.*fixation protection/)
    const login = page.locator('#timeline .event[data-type="login.succeeded"]')
    await login.first().waitFor()
    t.match(await login.first().textContent(), /login succeeded \(spring-form\)\s*2 steps/)
    for (const type of ['session.loggedOut', 'login.started', 'request.replayed', 'csrf.captured', 'cookie.set']) {
      t.ok(await page.locator(`#timeline .event[data-type="${type}"]`).count() > 0, `timeline shows ${type}`)
    }
    await page.locator('#jar tbody tr[data-cookie="theme"]').waitFor()
    t.equal(await page.locator('#jar tbody tr').count(), 2, 'the jar table follows the events')
    t.match(await page.locator('#jar tbody tr[data-cookie="theme"]').textContent(), /theme\s*dark.*SameSite=lax/)
    t.match(await page.textContent('#har-link'), /^HAR \(\d+\)$/)
  })

  t.test('the exchange list marks a renewed request, opens to its redacted headers, and the timeline links to it', async (t) => {
    // The first request of the profile was renewed too (its first login): wait for one more.
    const renewedBefore = await page.locator('#exchanges tr.exchange[data-marks~="renewed"]').count()
    app.invalidateAll()
    const me = await curl([...as, `${app.origin}/api/me`])
    t.equal(me.status, 200, 'the autopilot logged in again and replayed the request')
    await page.waitForFunction((n) => document.querySelectorAll('#exchanges tr.exchange[data-marks~="renewed"]').length > n, renewedBefore, { timeout: 10_000 })
    const renewed = page.locator('#exchanges tr.exchange[data-marks~="renewed"]').first()
    const marks = (await renewed.getAttribute('data-marks'))!.split(' ')
    t.same(marks, ['sent-with-session', 'logged-out', 'renewed', 'replayed'], 'sent with the stale session, answered logged out, renewed, replayed')
    t.match(await renewed.textContent(), new RegExp(`GET.*${app.origin}/api/me.*200.*app.*session.*logged out.*renewed.*replayed`))
    const id = await renewed.getAttribute('data-request-id')
    t.ok(Number(id) > 0, `request id ${id}`)
    const plain = page.locator('#exchanges tr.exchange[data-marks="sent-with-session"]')
    t.ok(await plain.count() > 0, 'requests that only rode on the session are marked so')

    await renewed.click()
    const detail = page.locator(`#exchange-detail .detail-head[data-request-id="${id}"]`)
    await detail.waitFor()
    const text = await page.locator('#exchange-detail').textContent()
    t.match(text, /Request headers.*cookie\s*JSESSIONID=<redacted>/i, 'the request cookie value is redacted, the name shown')
    t.match(text, /Response headers.*x-session-proxy-session\s*renewed/i)
    t.notMatch(text, /JSESSIONID=[0-9A-F]{18}/, 'no session value anywhere in the detail')
    t.match(text, /events: .*session\.loggedOut.*login\.started.*request\.replayed/)

    // The timeline entries of that request: their URL and a labelled link to the exchange.
    await page.click('#exchange-detail button.close')
    const replayed = page.locator(`#timeline .event[data-type="request.replayed"]:has(a.req[data-request-id="${id}"])`)
    await replayed.waitFor()
    t.match(await replayed.locator('.url').textContent(), `${app.origin}/api/me`)
    t.equal(await replayed.locator('a.req').textContent(), `request #${id}`)
    const labels = await page.locator('#timeline .event .req').allTextContents()
    t.same(labels.filter((l) => l !== '' && !/^request #\d+$/.test(l)), [], `no bare number in the timeline (${labels.length} entries)`)
    const relogin = page.locator(`#timeline .event[data-type="login.succeeded"]:has(a.req[data-request-id="${id}"])`)
    t.match(await relogin.textContent(), /re-login/)
    await replayed.locator('a.req').click()
    await detail.waitFor()
    t.equal(await page.locator('#exchanges tr.exchange.open').getAttribute('data-request-id'), id, 'the link opened the exchange in the list')
  })

  t.test('explain from the page', async (t) => {
    await page.fill('#explain-url', `${app.origin}/api/items`)
    await page.selectOption('#explain-method', 'POST')
    await page.click('#explain-form button[type="submit"]')
    await page.locator('#explain-result table tr[data-cookie="JSESSIONID"]').waitFor()
    t.match(await page.locator('#explain-result tr[data-cookie="JSESSIONID"]').textContent(), /sent/)
    t.match(await page.locator('#explain-result').textContent(), /X-CSRF-TOKEN/)

    await page.fill('#explain-url', `https://127.0.0.1:${app.port}/other`)
    await page.selectOption('#explain-method', 'GET')
    await page.selectOption('#explain-site', 'cross-site')
    await page.click('#explain-form button[type="submit"]')
    await page.waitForFunction(() => document.querySelector('#explain-result tr[data-cookie="theme"]')?.textContent?.includes('same-site') === true)
    t.match(await page.locator('#explain-result tr[data-cookie="theme"]').textContent(), /not sent.*same-site.*SameSite=Lax/)
  })

  t.test('screenshot of the page showing the login and the rotation', async (t) => {
    mkdirSync(shotDir, { recursive: true })
    await page.selectOption('#explain-site', 'same-site')
    await page.fill('#explain-url', `http://127.0.0.1:${app.port}/api/items`)
    await page.selectOption('#explain-method', 'POST')
    await page.click('#explain-form button[type="submit"]')
    await page.waitForFunction(() => document.querySelector('#explain-result tr[data-cookie="theme"]')?.textContent?.includes('sent') === true)
    const shot = await page.screenshot({ path: screenshot, fullPage: true })
    t.ok(shot.length > 20_000, `a real screenshot (${shot.length} bytes) at ${screenshot}`)
    const timeline = await page.locator('#timeline-panel').screenshot()
    t.ok(timeline.length > 5_000, 'the timeline panel rendered')
    // What the screenshot shows, read from the same rendered page.
    const visible = await page.locator('#timeline .event:visible').allTextContents()
    t.ok(visible.some((s) => /login succeeded/.test(s)), 'the timeline shows the login')
    t.ok(visible.some((s) => /JSESSIONID rotated/.test(s)), 'and the rotation')
    const box = await page.locator('#timeline .event[data-type="session.rotated"]').first().boundingBox()
    t.ok(box !== null && box.height > 10 && box.y < 2000, 'the rotation entry is laid out in the screenshot')
  })

  t.test('delete a cookie from the jar table', async (t) => {
    await page.locator('#jar tbody tr[data-cookie="theme"] button.delete').click()
    await page.locator('#jar tbody tr[data-cookie="theme"]').waitFor({ state: 'detached' })
    const cookies = await (await fetch(`${proxy.url}/_session/profiles/app/cookies`)).json() as { cookies: Array<{ name: string }> }
    t.same(cookies.cookies.map((c) => c.name), ['JSESSIONID'], 'gone from the proxy too')
    await page.locator('#timeline .event[data-type="cookie.deleted"]').first().waitFor()
    t.match(await page.locator('#timeline .event[data-type="cookie.deleted"]').first().textContent(), /theme deleted\s*by admin/)
  })

  t.test('cookies.txt export and import from the page', async (t) => {
    const exported = page.waitForEvent('download')
    await page.click('#cookies-export')
    const download = await exported
    t.equal(download.suggestedFilename(), 'app.cookies.txt')
    const text = readFileSync((await download.path())!, 'utf8')
    t.match(text, /# Netscape HTTP Cookie File/)
    t.match(text, /\tJSESSIONID\t/)
    await page.setInputFiles('#cookies-file', { name: 'more.cookies.txt', mimeType: 'text/plain', buffer: Buffer.from(text + '127.0.0.1\tFALSE\t/\tFALSE\t0\timported\tfrom-file\n') })
    await page.locator('#jar tbody tr[data-cookie="imported"]').waitFor()
    t.match(await page.locator('#jar tbody tr[data-cookie="imported"]').textContent(), /imported\s*from-file/)
    t.ok(await page.locator('#jar tbody tr[data-cookie="JSESSIONID"]').count() === 1, 'the exported session came back with it')
    await curl([...as, `${app.origin}/api/me`])
    t.match(app.log.at(-1)!.headers.cookie, /imported=from-file/, 'the next proxied request carries the imported cookie')
  })

  t.test('cookie add and edit from the page: the next proxied request carries it', async (t) => {
    await t.test('add, edit, send', async (t) => {
      await page.click('#add-cookie')
      await page.fill('#cookie-name', 'flavour')
      await page.fill('#cookie-value', 'vanilla')
      await page.fill('#cookie-domain', '127.0.0.1')
      await page.fill('#cookie-path', '/api')
      await page.selectOption('#cookie-samesite', 'lax')
      await page.click('#cookie-save')
      const row = page.locator('#jar tbody tr[data-cookie="flavour"]')
      await row.waitFor()
      t.match(await row.textContent(), /flavour\s*vanilla\s*127\.0\.0\.1\s*\/api/)
      await row.locator('button.edit').click()
      t.equal(await page.inputValue('#cookie-value'), 'vanilla', 'the form opens filled')
      t.equal(await page.getAttribute('#cookie-name', 'readonly'), '', 'the name is the key: not editable')
      await page.fill('#cookie-value', 'chocolate')
      await page.check('#cookie-httponly')
      await page.click('#cookie-save')
      await page.waitForFunction(() => document.querySelector('#jar tr[data-cookie="flavour"]')?.textContent?.includes('chocolate') === true)
      t.match(await row.textContent(), /HttpOnly/)
      t.ok(await page.locator('#cookie-form').isHidden(), 'the form closes when saved')
      await curl([...as, `${app.origin}/api/me`])
      t.match(app.log.at(-1)!.headers.cookie, /flavour=chocolate/, 'the next proxied request carries the edited value')
    })
  })

  t.test('session.json export and import from the page', async (t) => {
    await t.test('export, edit, import', async (t) => {
      const exported = page.waitForEvent('download')
      await page.click('#session-export')
      const download = await exported
      t.equal(download.suggestedFilename(), 'app.session.json')
      const session = JSON.parse(readFileSync((await download.path())!, 'utf8')) as { cookies: Array<{ name: string, value: string }> }
      t.ok(session.cookies.some((c) => c.name === 'JSESSIONID'), 'the session is in it')
      const imported = session.cookies.find((c) => c.name === 'imported')!
      imported.value = 'from-session-json'
      await page.setInputFiles('#session-file', { name: 'app.session.json', mimeType: 'application/json', buffer: Buffer.from(JSON.stringify(session)) })
      await page.waitForFunction(() => document.querySelector('#jar tr[data-cookie="imported"]')?.textContent?.includes('from-session-json') === true)
      t.ok(await page.locator('#jar tbody tr[data-cookie="JSESSIONID"]').count() === 1, 'the session came back with it')
    })
  })

  t.test('the CA certificate link downloads the proxy\'s CA', async (t) => {
    t.equal(await page.getAttribute('#ca-link', 'href'), '/_session/ca.pem')
    const downloading = page.waitForEvent('download')
    await page.click('#ca-link')
    const download = await downloading
    t.match(readFileSync((await download.path())!, 'utf8'), /^-----BEGIN CERTIFICATE-----/)
  })

  t.test('the timeline survives a restart (events persist by default)', async (t) => {
    const before = await page.locator('#timeline .event').evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.seq))
    t.ok(before.length > 5, `${before.length} events before the restart`)
    // Leave the page first: a stop cuts its event stream, which Chromium reports as an error.
    await page.goto('about:blank')
    t.equal(await proxy.stop(), 0)
    proxy = await startProxy({ dataDir: proxy.dataDir, config: proxyConfig() })
    as[1] = `http://app@127.0.0.1:${proxy.port}`
    await page.goto(`${proxy.url}/_session/#app`)
    await page.waitForSelector('#live.on', { timeout: 10_000 })
    await page.locator('#timeline .event').first().waitFor()
    const after = await page.locator('#timeline .event').evaluateAll((els) => els.map((e) => (e as HTMLElement).dataset.seq))
    t.same(after, before, 'the same events, listed after the restart')
    t.ok(await page.locator('#timeline .event[data-type="session.rotated"] .url').count() > 0, 'with their URLs')
  })

  t.test('a profile created and deleted from the page', async (t) => {
    await t.test('create, then delete', async (t) => {
      await page.fill('#profile-name', 'scratch')
      await page.click('#profile-form button[type="submit"]')
      await page.waitForSelector('.profile[data-profile="scratch"].active')
      const asked: string[] = []
      page.once('dialog', (d) => { asked.push(d.message()); void d.accept() })
      await page.click('#delete-profile')
      await page.locator('.profile[data-profile="scratch"]').waitFor({ state: 'detached' })
      const list = await (await fetch(`${proxy.url}/_session/profiles`)).json() as { profiles: Array<{ name: string }> }
      t.notOk(list.profiles.some((p) => p.name === 'scratch'), 'gone from the proxy too')
      t.match(asked, [/Delete profile scratch/], 'asked first')
      t.ok(await page.locator('.profile.active').count() === 1, 'the page moved on to another profile')
    })
  })

  t.test('no console errors, no CSP violations', async (t) => {
    t.same(problems, [])
  })
}
