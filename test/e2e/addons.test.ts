/**
 * The public addon API end to end (issue 10): the README's example addons
 * (examples/addons/), loaded with --addon and with `addons:` in a config file,
 * tag requests and answer a path from a fixture on every entry (plain http,
 * intercepted https, reverse mode, WebSocket handshakes, the autopilot's own
 * login requests); a throwing addon gives 502 SP_ADDON_ERROR and the proxy
 * keeps serving; a bad addon file refuses the start.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import t from 'tap'
import { ProxyAgent } from 'undici'
import { FIXTURE_ADDON, FIXTURE_BODY, TAG_ADDON, loginRule, rawHandshake, startLoginApp, writeConfig, writeModule } from '../helpers/addons.js'
import { ROOT, adminGet, assertNoGuard, cleanup, curl, echoCookies, runCli, startProxy, startUpstream, tempDir, viaProxy, type ProxyProcess, type UpstreamHandler } from '../helpers/proxy.js'
import { createTestCa, startHttpsUpstream } from '../helpers/tls.js'
import { openWs, startWsUpstream } from '../helpers/ws.js'

const echoTag: UpstreamHandler = (req, res) => {
  res.writeHead(200, { 'content-type': 'application/json', server: 'upstream/1.0' })
  res.end(JSON.stringify({ tag: req.headers['x-addon-tag'] ?? null, path: req.url }))
}

async function proxyCaFile (proxy: ProxyProcess, dir: string): Promise<string> {
  const file = join(dir, 'proxy-ca.pem')
  writeFileSync(file, (await adminGet(proxy, '/_session/ca.pem')).body)
  return file
}

const tagOf = (body: string): unknown => (JSON.parse(body) as { tag: unknown }).tag

t.test('the README addons tag requests and answer from a fixture on every entry', async (t) => {
  const ca = createTestCa()
  const plain = await startUpstream(echoTag)
  const secure = await startHttpsUpstream(echoTag, ca)
  const ws = await startWsUpstream()
  const app = await startLoginApp()
  // One addon from the config file (relative to it), one from --addon.
  const dir = tempDir('sp-addon-config-')
  const config = writeConfig(dir, { addons: [relative(dir, FIXTURE_ADDON)], profiles: { ap: { autopilot: [loginRule(app)] } } })
  const proxy = await startProxy({ args: ['--config', config, '--addon', TAG_ADDON, '--upstream-ca', ca.file, '--connect-port', String(secure.port)] })
  const reverse = await startProxy({ args: ['--reverse', plain.origin, '--addon', TAG_ADDON, '--addon', FIXTURE_ADDON] })
  const cacert = await proxyCaFile(proxy, dir)
  t.teardown(async () => {
    await proxy.stop(); await reverse.stop()
    await plain.close(); await secure.close(); await ws.close(); await app.close()
    cleanup(proxy.dataDir, reverse.dataDir, ca.dir, dir)
  })
  t.ok(proxy.output.some((l) => l.includes('"msg":"addon loaded"') && l.includes('"addon":"answer-from-fixture"')), 'the start log names the config-file addon')
  t.ok(proxy.output.some((l) => l.includes('"msg":"addon loaded"') && l.includes('"addon":"tag-requests"')), 'and the --addon one')

  t.test('plain http', async (t) => {
    const r = await curl(['-x', proxy.url, `${plain.origin}/echo`])
    t.equal(r.status, 200)
    t.equal(tagOf(r.stdout), 'default/http')
    const before = plain.requests.length
    const f = await curl(['-x', proxy.url, '-D', '-', `${plain.origin}/fixture/status`])
    t.equal(f.status, 200)
    t.match(f.stdout, /x-answered-by: fixture/i)
    t.same(JSON.parse(f.stdout.slice(f.stdout.indexOf('\r\n\r\n') + 4)), FIXTURE_BODY)
    t.equal(plain.requests.length, before, 'the upstream was not contacted')
    const alice = await curl(['-x', `http://alice@127.0.0.1:${proxy.port}`, `${plain.origin}/echo`])
    t.equal(tagOf(alice.stdout), 'alice/http', 'per profile')
  })

  t.test('intercepted https (HTTP/1.1)', async (t) => {
    const r = await curl(['-x', proxy.url, '--cacert', cacert, '--http1.1', `${secure.origin}/echo`])
    t.equal(r.status, 200, r.stderr)
    t.equal(tagOf(r.stdout), 'default/https')
    const before = secure.requests.length
    const f = await curl(['-x', proxy.url, '--cacert', cacert, '--http1.1', `${secure.origin}/fixture/status`])
    t.equal(f.status, 200)
    t.same(JSON.parse(f.stdout), FIXTURE_BODY)
    t.equal(secure.requests.length, before, 'the upstream was not contacted')
  })

  t.test('intercepted https over HTTP/2', async (t) => {
    // -w: the version, then the status line the curl helper reads.
    const h2 = ['-x', proxy.url, '--cacert', cacert, '--http2', '-w', '\n%{http_version}\n%{http_code}']
    const r = await curl([...h2, '-H', 'proxy-authorization: Basic ' + Buffer.from('carol:x').toString('base64'), `${secure.origin}/echo`])
    t.equal(r.status, 200, r.stderr)
    const at = r.stdout.lastIndexOf('\n')
    t.equal(r.stdout.slice(at + 1), '2', 'the client spoke HTTP/2 inside the tunnel')
    t.equal(tagOf(r.stdout.slice(0, at)), 'carol/https', 'tagged with the profile, kind https')
    const before = secure.requests.length
    const f = await curl([...h2, `${secure.origin}/fixture/status`])
    t.equal(f.status, 200)
    const cut = f.stdout.lastIndexOf('\n')
    t.equal(f.stdout.slice(cut + 1), '2')
    t.same(JSON.parse(f.stdout.slice(0, cut)), FIXTURE_BODY, 'answered from the fixture over h2')
    t.equal(secure.requests.length, before, 'the upstream was not contacted')
  })

  t.test('reverse mode', async (t) => {
    const r = await curl([`${reverse.url}/echo`])
    t.equal(r.status, 200)
    t.equal(tagOf(r.stdout), 'default/reverse')
    const f = await curl([`${reverse.url}/fixture/status`])
    t.same(JSON.parse(f.stdout), FIXTURE_BODY)
  })

  t.test('WebSocket handshakes', async (t) => {
    const agent = new ProxyAgent({ uri: proxy.url, proxyTunnel: false })
    t.teardown(async () => await agent.close())
    const session = await openWs(`ws://127.0.0.1:${ws.port}/socket`, agent)
    t.equal(await session.next(), 'hello')
    await session.close()
    t.equal(ws.handshakes.at(-1)!['x-addon-tag'], 'default/websocket', 'the handshake was tagged')
    const before = ws.handshakes.length
    const f = await rawHandshake(proxy.port, `http://127.0.0.1:${ws.port}/fixture/status`)
    t.equal(f.status, 200, 'a handshake answered from the fixture')
    t.same(JSON.parse(f.body), FIXTURE_BODY)
    t.equal(ws.handshakes.length, before, 'the upstream saw no handshake')
  })

  t.test('the autopilot: its login requests and the managed request', async (t) => {
    const r = await curl(['-x', `http://ap@127.0.0.1:${proxy.port}`, `${app.origin}/account`])
    t.equal(r.status, 200, r.stdout)
    t.equal(tagOf(r.stdout), 'ap/http', 'the replayed request is tagged')
    const login = app.requests.find((q) => q.url === '/login')
    t.equal(login?.headers['x-addon-tag'], 'ap/login', 'the login step the proxy sent itself is tagged')
    const f = await curl(['-x', `http://ap@127.0.0.1:${proxy.port}`, `${app.origin}/fixture/status`])
    t.same(JSON.parse(f.stdout), FIXTURE_BODY, 'the managed path answers from the fixture too')
  })
  t.doesNotThrow(() => assertNoGuard(proxy))
})

t.test('a failing addon gives 502 SP_ADDON_ERROR and the proxy keeps serving', async (t) => {
  const dir = tempDir('sp-addon-bad-')
  const errors = join(dir, 'errors.log')
  const file = writeModule(dir, 'flaky.mjs', `
    import { appendFileSync } from 'node:fs'
    export default async () => ({
      name: 'flaky',
      request (flow) {
        if (flow.request.url.endsWith('/throw')) throw new Error('request went wrong')
        if (flow.request.url.endsWith('/reject')) return Promise.reject(new Error('async request went wrong'))
        if (flow.request.url.endsWith('/stuck')) return new Promise(() => {})
      },
      async response (flow) {
        await new Promise((resolve) => setTimeout(resolve, 5))
        if (flow.request.url.endsWith('/late')) throw new Error('response went wrong')
        flow.response.headers.delete('server')
      },
      error (flow) { appendFileSync(${JSON.stringify(errors)}, flow.error.code + ' ' + flow.kind + '\\n') }
    })
  `)
  const up = await startUpstream(echoTag)
  const ws = await startWsUpstream()
  const proxy = await startProxy({ args: ['--addon', file], env: { SESSION_PROXY_LIMITS_ADDON_HOOK_TIMEOUT_MS: '300' } })
  t.teardown(async () => { await proxy.stop(); await up.close(); await ws.close(); cleanup(proxy.dataDir, dir) })

  for (const path of ['/throw', '/reject']) {
    const r = await viaProxy(proxy.port, `${up.origin}${path}`)
    t.equal(r.status, 502, path)
    t.equal(r.headers['x-session-proxy-error'], 'SP_ADDON_ERROR')
    t.match(r.body, /addon "flaky" failed in its request hook: (async )?request went wrong/)
  }
  const late = await viaProxy(proxy.port, `${up.origin}/late`)
  t.equal(late.status, 502)
  t.equal(late.headers['x-session-proxy-error'], 'SP_ADDON_ERROR')
  t.match(late.body, /addon "flaky" failed in its response hook: response went wrong/)

  const stuck = await viaProxy(proxy.port, `${up.origin}/stuck`)
  t.equal(stuck.status, 502, 'a hook that never settles')
  t.match(stuck.body, /addon "flaky" failed in its request hook: it did not settle within 300 ms \(limits.addonHookTimeoutMs\)/)

  const ok = await viaProxy(proxy.port, `${up.origin}/fine`)
  t.equal(ok.status, 200, 'the next request is served')
  t.equal(ok.headers.server, undefined, 'the async response hook dropped the server header')
  t.equal(JSON.parse(ok.body).path, '/fine')

  const h = await rawHandshake(proxy.port, `http://127.0.0.1:${ws.port}/throw`)
  t.equal(h.status, 502, 'a WebSocket handshake too')
  t.equal(h.headers['x-session-proxy-error'], 'SP_ADDON_ERROR')

  // A request with a body, held while the async response hook runs: nothing lost.
  const body = Buffer.alloc(256 * 1024, 'x')
  const echo = await startUpstream((req, res) => { const c: Buffer[] = []; req.on('data', (d: Buffer) => c.push(d)); req.on('end', () => { res.end(String(Buffer.concat(c).length)) }) })
  t.teardown(async () => await echo.close())
  const posted = await viaProxy(proxy.port, `${echo.origin}/upload`, { method: 'POST', body })
  t.equal(posted.body, String(body.length), 'the whole request body reached the upstream')

  // A response that sets a cookie waits for both the journal write and the async response hook.
  const jarUp = await startUpstream(echoCookies())
  t.teardown(async () => await jarUp.close())
  const setting = await viaProxy(proxy.port, `${jarUp.origin}/login?set=${encodeURIComponent('sid=held; Path=/')}`)
  t.equal(setting.status, 200)
  t.match(readFileSync(join(proxy.dataDir, 'jars', 'default.jsonl'), 'utf8'), /sid/, 'the cookie is on disk once the client has the answer')
  t.equal(JSON.parse((await viaProxy(proxy.port, `${jarUp.origin}/next`)).body).cookie, 'sid=held')

  t.equal(readFileSync(errors, 'utf8'), 'SP_ADDON_ERROR http\nSP_ADDON_ERROR http\nSP_ADDON_ERROR http\nSP_ADDON_ERROR http\nSP_ADDON_ERROR websocket\n', 'error hooks ran for each failure')
  t.ok(proxy.output.some((l) => l.includes('an addon hook failed')), 'logged')
  t.doesNotThrow(() => assertNoGuard(proxy), 'the process guard never fired')
})

t.test('an async request hook keeps a streamed request body whole', async (t) => {
  const dir = tempDir('sp-addon-slow-')
  const file = writeModule(dir, 'slow.mjs', `
    export default { async request (flow) { await new Promise((resolve) => setTimeout(resolve, 50)); flow.request.headers.set('x-slow', 'yes') } }
  `)
  const up = await startUpstream((req, res) => { const c: Buffer[] = []; req.on('data', (d: Buffer) => c.push(d)); req.on('end', () => { res.end(`${req.headers['x-slow']} ${Buffer.concat(c).length}`) }) })
  const proxy = await startProxy({ args: ['--addon', file] })
  t.teardown(async () => { await proxy.stop(); await up.close(); cleanup(proxy.dataDir, dir) })
  const body = Buffer.alloc(1024 * 1024, 'y')
  const r = await viaProxy(proxy.port, `${up.origin}/upload`, { method: 'POST', body })
  t.equal(r.body, `yes ${body.length}`)
})

t.test('SESSION_PROXY_ADDONS loads addons too', async (t) => {
  const up = await startUpstream(echoTag)
  const proxy = await startProxy({ env: { SESSION_PROXY_ADDONS: TAG_ADDON } })
  t.teardown(async () => { await proxy.stop(); await up.close(); cleanup(proxy.dataDir) })
  const r = await curl(['-x', proxy.url, `${up.origin}/`])
  t.equal(tagOf(r.stdout), 'default/http')
})

t.test('an addon scoped with `profiles` runs only for those profiles, on every entry', async (t) => {
  const up = await startUpstream(echoTag)
  const ws = await startWsUpstream()
  const dir = tempDir('sp-addon-scoped-')
  const scoped = writeModule(dir, 'scoped.mjs', `export default {
  name: 'vu-only',
  profiles: ['vu-*'],
  request (flow) { flow.request.headers.set('x-addon-tag', 'vu:' + flow.profile + '/' + flow.kind) }
}`)
  const proxy = await startProxy({ args: ['--addon', scoped] })
  t.teardown(async () => { await proxy.stop(); await up.close(); await ws.close(); cleanup(proxy.dataDir, dir) })
  const vu = await curl(['-x', proxy.url, '-H', 'x-session-profile: vu-7', `${up.origin}/`])
  t.equal(tagOf(vu.stdout), 'vu:vu-7/http', 'a matching profile runs the addon')
  const other = await curl(['-x', proxy.url, '-H', 'x-session-profile: alice', `${up.origin}/`])
  t.equal(tagOf(other.stdout), null, 'another profile does not')
  const plain = await curl(['-x', proxy.url, `${up.origin}/`])
  t.equal(tagOf(plain.stdout), null, 'nor does the default profile')
  const agent = new ProxyAgent({ uri: proxy.url, proxyTunnel: false })
  t.teardown(async () => await agent.close())
  for (const [profile, tag] of [['vu-1', 'vu:vu-1/websocket'], ['bob', undefined]] as const) {
    const session = await openWs(`ws://127.0.0.1:${ws.port}/socket`, agent, { 'x-session-profile': profile })
    t.equal(await session.next(), 'hello')
    await session.close()
    t.equal(ws.handshakes.at(-1)!['x-addon-tag'], tag, `the ${profile} handshake: ${tag === undefined ? 'not tagged' : 'tagged'}`)
  }
  t.doesNotThrow(() => assertNoGuard(proxy))
})

t.test('an addon that cannot be loaded refuses the start, naming the file', async (t) => {
  const dir = tempDir('sp-addon-load-')
  t.teardown(() => cleanup(dir))
  mkdirSync(join(dir, 'data'))
  const cases: Array<[string, string | null, RegExp]> = [
    ['missing.mjs', null, /cannot load addon .*missing\.mjs: no such file/],
    ['syntax.mjs', 'export default {', /cannot load addon .*syntax\.mjs: /],
    ['no-default.mjs', 'export const x = 1', /no-default\.mjs: the module has no default export/],
    ['factory.mjs', 'export default async () => { throw new Error("no token") }', /factory\.mjs: its factory function failed: no token/],
    ['hook.mjs', 'export default { request: 42 }', /hook\.mjs: "request" must be a function/]
  ]
  for (const [name, code, message] of cases) {
    const file = code === null ? join(dir, name) : writeModule(dir, name, code)
    const r = runCli(['--port', '0', '--data-dir', join(dir, 'data'), '--addon', file])
    t.equal(r.status, 2, `${name}: exit status 2`)
    t.match(r.stderr, message, name)
  }
  const config = writeConfig(dir, { addons: ['missing.mjs'] })
  const r = runCli(['--port', '0', '--data-dir', join(dir, 'data'), '--config', config])
  t.equal(r.status, 2)
  t.match(r.stderr, `cannot load addon ${join(dir, 'missing.mjs')}`, 'a config path is relative to the config file')
})

t.test('the README shows the example files as they are', async (t) => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
  for (const file of [TAG_ADDON, FIXTURE_ADDON]) {
    // The files start with a comment saying what they do; the README says it in prose.
    const code = readFileSync(file, 'utf8').replace(/^(\/\/.*\n)+\n?/, '')
    t.ok(readme.includes('```js\n' + code + '```'), `${relative(ROOT, file)} is in the README's Addons section`)
  }
})
