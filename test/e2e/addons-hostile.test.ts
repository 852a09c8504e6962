/**
 * Hostile addons (round 3): hooks that hand the proxy values Node refuses
 * (CRLF in a header value, a bad header name, a bad status, a body that is
 * neither a string nor bytes, a body over limits.addonMaxBodyBytes), call
 * respond() twice or from a response hook, throw a non-Error, return a
 * thenable that never settles or settles twice, drop Host or Cookie, and an
 * addon whose factory throws or hangs at start. Each is one clear refusal
 * through the error writer; the proxy keeps serving and its process guard
 * never fires.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { rawHandshake, writeModule } from '../helpers/addons.js'
import { startWsUpstream } from '../helpers/ws.js'
import { assertNoGuard, cleanup, startProxy, startUpstream, tempDir, viaProxy, runCli, type ProxyProcess, type Upstream } from '../helpers/proxy.js'

const HOSTILE = `
const cases = {
  'crlf-value': (f) => { f.request.headers.set('x-evil', 'a\\r\\nInjected: yes') },
  'bad-name': (f) => { f.request.headers.set('bad name', 'v') },
  'crlf-response': null,
  'status-low': (f) => { f.respond({ status: 99, body: 'x' }) },
  'status-high': (f) => { f.respond({ status: 1000, body: 'x' }) },
  'status-string': (f) => { f.respond({ status: '200', body: 'x' }) },
  'body-number': (f) => { f.respond({ body: 42 }) },
  'body-object': (f) => { f.respond({ body: { a: 1 } }) },
  'body-huge': (f) => { f.respond({ body: Buffer.alloc(2 * 1024 * 1024, 97) }) },
  'respond-twice': (f) => { f.respond({ body: 'one' }); f.respond({ body: 'two' }) },
  'respond-bad-header': (f) => { f.respond({ headers: { 'x-a': 'b\\r\\nc' }, body: 'x' }) },
  'throw-string': () => { throw 'a string' },
  'throw-undefined': () => { throw undefined },
  'throw-null': () => { throw null },
  'throw-unprintable': () => { throw { toString () { throw new Error('no') } } },
  'never-settles': () => ({ then () {} }),
  'settles-twice': () => ({ then (ok, fail) { ok(); ok(); fail(new Error('late')) } }),
  'then-throws': () => ({ then () { throw new Error('then threw') } }),
  'reject-undefined': () => Promise.reject(undefined),
  'delete-host': (f) => { f.request.headers.delete('host') },
  'delete-cookie': (f) => { f.request.headers.delete('cookie') },
  'late-respond': (f) => { setTimeout(() => { try { f.respond({ body: 'late' }) } catch {} }, 5) },
  'late-set': (f) => { setTimeout(() => { try { f.request.headers.set('x-late', 'a\\r\\nb') } catch {} ; f.request.headers.set('x-late', 'fine') }, 5) },
  'set-non-string': (f) => { f.request.headers.set('x-num', 12); f.request.headers.set('x-obj', { toString () { throw new Error('boom') } }) },
}
export default {
  name: 'hostile',
  request (f) {
    const c = f.request.headers.get('x-case')
    const fn = cases[c]
    if (fn) return fn(f)
  },
  response (f) {
    const c = f.request.headers.get('x-case')
    if (c === 'respond-in-response') f.respond({ body: 'nope' })
    if (c === 'response-crlf') f.response.headers.set('x-evil', 'a\\r\\nb')
    if (c === 'response-bad-name') f.response.headers.set('bad:name', 'x')
    if (c === 'response-status') f.response.status = 1000
    if (c === 'response-delete-all') for (const [n] of [...f.response.headers]) f.response.headers.delete(n)
  }
}
`

let upstream: Upstream
let upstreamHits = 0
const seen: Array<Record<string, unknown>> = []
let proxy: ProxyProcess
let dir: string
t.before(async () => {
  upstream = await startUpstream((req, res) => {
    upstreamHits++
    seen.push(req.headers)
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ host: req.headers.host ?? null, evil: req.headers['x-evil'] ?? null, injected: req.headers.injected ?? null, num: req.headers['x-num'] ?? null }))
  })
  dir = tempDir('sp-addon-hostile-')
  const file = writeModule(dir, 'hostile.mjs', HOSTILE)
  proxy = await startProxy({ args: ['--addon', file], config: { limits: { addonHookTimeoutMs: 300 } } })
})
t.teardown(async () => {
  await proxy?.stop()
  await upstream?.close()
  cleanup(proxy?.dataDir ?? '', dir)
})

const hit = async (c: string): Promise<{ status: number, body: string, headers: Record<string, unknown> }> => {
  const r = await viaProxy(proxy.port, `${upstream.origin}/x`, { headers: { 'x-case': c } })
  return { status: r.status, body: r.body, headers: r.headers }
}

const refusals = ['crlf-value', 'bad-name', 'status-low', 'status-high', 'status-string', 'body-number', 'body-object', 'respond-twice', 'respond-bad-header', 'throw-string', 'throw-undefined', 'throw-null', 'throw-unprintable', 'never-settles', 'then-throws', 'reject-undefined', 'respond-in-response', 'response-crlf', 'response-bad-name', 'response-status', 'set-non-string']
for (const c of refusals) {
  t.test(`${c}: 502 SP_ADDON_ERROR naming the addon and hook`, async (t) => {
    const before = upstreamHits
    const r = await hit(c)
    t.equal(r.status, 502, r.body)
    t.equal(r.headers['x-session-proxy-error'], 'SP_ADDON_ERROR', r.body)
    t.match(r.body, /addon "hostile" failed in its (request|response) hook/)
    if (!c.startsWith('respon')) t.equal(upstreamHits, before, 'nothing went upstream')
    assertNoGuard(proxy)
  })
}

t.test('CRLF smuggled through a header value never reaches the upstream', async (t) => {
  const r = await hit('crlf-value')
  t.equal(r.status, 502)
  t.notOk(seen.some((h) => h.injected !== undefined), 'no Injected header upstream')
})

t.test('the messages say what was wrong', async (t) => {
  t.match((await hit('throw-undefined')).body, /it threw undefined/)
  t.match((await hit('throw-string')).body, /failed in its request hook: a string/)
  t.match((await hit('throw-unprintable')).body, /cannot be shown/)
  t.match((await hit('respond-twice')).body, /respond\(\) was called more than once/)
  t.match((await hit('body-number')).body, /body must be a string, a Buffer or a Uint8Array, not number/)
  t.match((await hit('crlf-value')).body, /x-evil/)
})

t.test('what the proxy can serve, it serves', async (t) => {
  const big = await hit('body-huge')
  t.equal(big.status, 200)
  t.equal(big.body.length, 2 * 1024 * 1024, 'a 2 MiB respond() body arrives whole')
  t.equal((await hit('settles-twice')).status, 200, 'a thenable that settles twice: its first outcome counts')
  const host = await hit('delete-host')
  t.equal(host.status, 200)
  t.equal(JSON.parse(host.body).host, new URL(upstream.origin).host, 'a deleted Host is sent anyway (the target decides it)')
  t.equal((await hit('delete-cookie')).status, 200)
  t.equal((await hit('response-delete-all')).status, 200, 'a response with every header removed is still framed')
})

t.test('a flow method called from an addon timer after its hook returned changes nothing', async (t) => {
  // respond() there throws to the addon (it is outside a request hook), as documented; an addon's own uncaught throw is its own bug.
  for (const c of ['late-respond', 'late-set']) {
    const r = await hit(c)
    t.equal(r.status, 200, c)
    t.equal(JSON.parse(r.body).evil, null, 'the upstream answered')
  }
  await new Promise((resolve) => setTimeout(resolve, 100))
  assertNoGuard(proxy)
  t.equal((await hit('none')).status, 200, 'still serving')
})

t.test('on a WebSocket handshake too: a bad header from a hook is SP_ADDON_ERROR, nothing goes upstream', async (t) => {
  const ws = await startWsUpstream()
  t.teardown(async () => { await ws.close() })
  for (const c of ['crlf-value', 'bad-name', 'throw-undefined', 'response-crlf', 'response-status']) {
    const before = ws.handshakes.length
    const r = await rawHandshake(proxy.port, `http://127.0.0.1:${ws.port}/ws`, { 'x-case': c })
    t.equal(r.status, 502, `${c}: ${r.head}`)
    t.equal(r.headers['x-session-proxy-error'], 'SP_ADDON_ERROR', c)
    if (!c.startsWith('response')) t.equal(ws.handshakes.length, before, `${c}: no handshake upstream`)
  }
  assertNoGuard(proxy)
})

t.test('an addon factory that throws a non-Error or never returns refuses the start, bounded', async (t) => {
  const d = tempDir('sp-addon-start-')
  t.teardown(() => cleanup(d))
  const cfg = join(d, 'config.json')
  writeFileSync(cfg, JSON.stringify({ limits: { addonStartTimeoutMs: 500 } }))
  const cases: Array<[string, string, RegExp]> = [
    ['throws-undefined.mjs', 'export default () => { throw undefined }', /throws-undefined\.mjs: its factory function failed: it threw undefined/],
    ['throws-unprintable.mjs', 'export default () => { throw Object.create(null) }', /throws-unprintable\.mjs: its factory function failed: it threw a non-Error/],
    ['hangs.mjs', 'export default () => new Promise(() => {})', /hangs\.mjs: its factory function did not return within 500 ms \(limits\.addonStartTimeoutMs\)/],
    ['hangs-thenable.mjs', 'export default () => ({ then () {} })', /hangs-thenable\.mjs: its factory function did not return within 500 ms/]
  ]
  for (const [name, code, message] of cases) {
    const started = Date.now()
    const r = runCli(['--config', cfg, '--port', '0', '--data-dir', join(d, 'data'), '--addon', writeModule(d, name, code)])
    t.equal(r.status, 2, `${name}: exit status 2`)
    t.match(r.stderr, message, name)
    t.ok(Date.now() - started < 10_000, `${name}: refused in bounded time`)
  }
})
