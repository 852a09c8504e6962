/**
 * The page and its assets on a real Fastify server with the admin error
 * handler: a fixed list (prototype names are 404), and a broken install
 * answers SP_INTERNAL without the path, which goes to the log.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify from 'fastify'
import pino from 'pino'
import t from 'tap'
import { adminErrorHandler } from '../../src/admin/index.js'
import { ASSETS, pageRoutes, PUBLIC_DIR } from '../../src/admin/page-route.js'

async function serve (t: { teardown: (fn: () => Promise<void> | void) => void }, dir?: string): Promise<{ url: string, logs: string[] }> {
  const logs: string[] = []
  const log = pino({ level: 'info' }, { write: (s: string) => { logs.push(s) } })
  const app = Fastify()
  app.setErrorHandler(adminErrorHandler(log))
  await app.register(pageRoutes, dir === undefined ? {} : { dir })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(async () => { await app.close() })
  return { url: `http://127.0.0.1:${(app.server.address() as { port: number }).port}`, logs }
}

t.test('the shipped page and assets', async (t) => {
  const { url } = await serve(t)
  const page = await fetch(`${url}/_session/`)
  t.equal(page.status, 200)
  t.match(page.headers.get('content-security-policy'), "script-src 'self'")
  t.match(await page.text(), '/_session/assets/app.js')
  t.equal((await fetch(`${url}/_session`, { redirect: 'manual' })).headers.get('location'), '/_session/')
  for (const [name, type] of ASSETS) {
    const r = await fetch(`${url}/_session/assets/${name}`)
    t.equal(r.status, 200, name)
    t.equal(r.headers.get('content-type'), type)
    t.equal(r.headers.get('x-content-type-options'), 'nosniff')
  }
})

t.test('anything not on the list is a 404 with a code', async (t) => {
  const { url } = await serve(t)
  for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'index.html', 'isPrototypeOf', '__defineGetter__', 'valueOf', '..%2Fpackage.json', 'APP.JS']) {
    const r = await fetch(`${url}/_session/assets/${name}`)
    t.equal(r.status, 404, name)
    t.equal(r.headers.get('x-session-proxy-error'), 'SP_ADMIN_NOT_FOUND')
    t.same(await r.json(), { error: 'SP_ADMIN_NOT_FOUND', message: 'no such asset' })
  }
})

t.test('a broken install: SP_INTERNAL to the client, the path only in the log', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sp-public-')) + '/'
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'index.html'), '<!doctype html>')
  const { url, logs } = await serve(t, dir)
  t.equal((await fetch(`${url}/_session/`)).status, 200)
  const r = await fetch(`${url}/_session/assets/app.js`)
  t.equal(r.status, 500)
  t.equal(r.headers.get('x-session-proxy-error'), 'SP_INTERNAL')
  const body = await r.text()
  t.same(JSON.parse(body), { error: 'SP_INTERNAL', message: 'internal error in the admin API; the proxy log has the details' })
  t.notMatch(body, dir)
  t.notMatch(body, PUBLIC_DIR)
  t.ok(logs.some((l) => l.includes('admin request failed') && l.includes(dir)), 'the log names the file')
})
