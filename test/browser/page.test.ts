/**
 * The web page at /_session/ in a real browser: Debian's Chromium, headless,
 * driven by playwright-core. Real traffic through the proxy (a form login by
 * the autopilot, which rotates JSESSIONID) must show up live in the timeline;
 * the jar table, its delete button and the explain form work; the page runs
 * without console errors under its Content-Security-Policy. The screenshot
 * goes to a temp dir; SP_UPDATE_SCREENSHOT=1 writes docs/screenshot.png (the
 * README's) instead, so a plain test run leaves the work tree unchanged.
 */
import { existsSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { chromium, type BrowserContext, type Page } from 'playwright-core'
import t from 'tap'
import { ROOT, cleanup, curl, startProxy, tempDir, type ProxyProcess } from '../helpers/proxy.js'
import { startSpringLikeApp, type SpringLikeApp } from '../observe/spring-like-app.js'

const CHROMIUM = '/usr/bin/chromium'
const UPDATE = process.env.SP_UPDATE_SCREENSHOT === '1'

if (!existsSync(CHROMIUM)) {
  t.fail(`${CHROMIUM} is missing: .ci/run installs it (apt-get install chromium)`)
} else {
  let app: SpringLikeApp
  let proxy: ProxyProcess
  let browser: BrowserContext
  let page: Page
  const problems: string[] = []
  const profileDir = tempDir('sp-chromium-')
  const shotDir = UPDATE ? join(ROOT, 'docs') : tempDir('sp-screenshot-')
  const screenshot = join(shotDir, 'screenshot.png')

  t.before(async () => {
    app = await startSpringLikeApp({ alice: 'alice-pw' })
    proxy = await startProxy({
      config: {
        profiles: {
          app: {
            autopilot: [{ match: `127.0.0.1:${app.port}`, login: { preset: 'spring-form', username: 'alice', password: { value: 'alice-pw' } }, csrf: [{ preset: 'spring' }] }],
            capture: { enabled: true }
          }
        }
      }
    })
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
    page.once('dialog', (d) => { void d.accept() })
    await page.locator('#jar tbody tr[data-cookie="theme"] button').click()
    await page.locator('#jar tbody tr[data-cookie="theme"]').waitFor({ state: 'detached' })
    const cookies = await (await fetch(`${proxy.url}/_session/profiles/app/cookies`)).json() as { cookies: Array<{ name: string }> }
    t.same(cookies.cookies.map((c) => c.name), ['JSESSIONID'], 'gone from the proxy too')
    await page.locator('#timeline .event[data-type="cookie.deleted"]').first().waitFor()
    t.match(await page.locator('#timeline .event[data-type="cookie.deleted"]').first().textContent(), /theme deleted\s*by admin/)
  })

  t.test('no console errors, no CSP violations', async (t) => {
    t.same(problems, [])
  })
}
