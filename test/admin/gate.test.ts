/**
 * The admin gate's rules, on a real http.Server: every request is answered
 * with the code the gate gives it (or "ok").
 */
import http from 'node:http'
import net from 'node:net'
import t from 'tap'
import { loadConfig } from '../../src/config/load.js'
import type { Config } from '../../src/config/schema.js'
import { ConfigError } from '../../src/errors.js'
import { admittedWithoutCredentials, checkAdminRequest, compileGateRules, splitAuthority, type GateRules } from '../../src/admin/gate.js'

const base = loadConfig({ env: {} }).config
const config = (over: Partial<Config> = {}): Config => ({ ...base, ...over, admin: { ...base.admin, ...over.admin } })

async function gateServer (t: { teardown: (fn: () => Promise<void>) => void }, rules: GateRules, host = '127.0.0.1'): Promise<number> {
  const server = http.createServer((req, res) => {
    const refusal = checkAdminRequest(rules, req)
    res.end(refusal === null ? (admittedWithoutCredentials(req) ? 'public' : 'ok') : `${refusal.statusCode} ${refusal.code}`)
  })
  await new Promise<void>((resolve) => server.listen(0, host, resolve))
  t.teardown(async () => { server.closeAllConnections(); await new Promise<void>((resolve) => server.close(() => resolve())) })
  return (server.address() as net.AddressInfo).port
}

/** A raw request, so that any Host (or none) goes out as written. */
async function ask (port: number, lines: string[], address = '127.0.0.1'): Promise<string> {
  return await new Promise((resolve, reject) => {
    const s = net.connect(port, address)
    let out = ''
    s.on('data', (c: Buffer) => { out += c.toString() })
    s.on('end', () => resolve(out.slice(out.indexOf('\r\n\r\n') + 4)))
    s.on('error', reject)
    s.write([...lines, 'Connection: close', '', ''].join('\r\n'))
  })
}

t.test('splitAuthority: names, ports, IPv6, and what is not a Host', async (t) => {
  t.same(splitAuthority('LocalHost:8080'), { name: 'localhost', port: '8080' })
  t.same(splitAuthority('localhost'), { name: 'localhost', port: null })
  t.same(splitAuthority('[::1]:80'), { name: '::1', port: '80' })
  t.same(splitAuthority('[::1]'), { name: '::1', port: null })
  t.same(splitAuthority('example.com:0080'), { name: 'example.com', port: '80' })
  for (const bad of ['', ':80', '[::1', '[nope]:1', '[::1]x', 'a:b', 'a:65536', 'a b', 'a/b', 'a@b:1', '::1']) t.equal(splitAuthority(bad), null, JSON.stringify(bad))
})

t.test('compileGateRules: admin.hosts and admin.token are checked at start-up', async (t) => {
  t.throws(() => compileGateRules(config({ admin: { hosts: ['bad host'], token: null } })), ConfigError)
  t.throws(() => compileGateRules(config({ admin: { hosts: [], token: { value: '' } } })), /admin\.token is empty/)
  t.throws(() => compileGateRules(config({ admin: { hosts: [], token: { env: 'SP_GATE_TOKEN' } } }), {}), /admin\.token: environment variable SP_GATE_TOKEN is not set/)
  const rules = compileGateRules(config({ host: '192.0.2.7', admin: { hosts: ['Proxy.Internal', 'front:8443'], token: { env: 'SP_GATE_TOKEN' } } }), { SP_GATE_TOKEN: 'abc' })
  t.equal(rules.loopbackOnly, false)
  t.ok(rules.names.has('192.0.2.7'), 'the configured listen address')
  t.same(rules.extra, [{ name: 'proxy.internal', port: null }, { name: 'front', port: '8443' }])
  t.equal(rules.tokenDigest?.length, 32, 'only a digest is kept')
  t.notOk(compileGateRules(config({ host: '0.0.0.0' })).names.has('0.0.0.0'), 'a wildcard is no name')
  t.ok(compileGateRules(config({ host: '[::ffff:10.0.0.1]' })).names.has('10.0.0.1'), 'an IPv4-mapped address is its IPv4 name')
})

t.test('Host: own names with any port, admin.hosts, the local address; everything else 421', async (t) => {
  const rules = compileGateRules(config({ admin: { hosts: ['proxy.internal', 'front:8443'], token: null } }))
  const port = await gateServer(t, rules, '0.0.0.0')
  const get = async (host: string | null, address?: string): Promise<string> => await ask(port, ['GET /_session/profiles HTTP/1.1', ...(host === null ? [] : [`Host: ${host}`])], address)
  for (const host of ['localhost', `localhost:${port}`, 'localhost:1', '127.0.0.1', '[::1]:9', 'proxy.internal:5', 'front:8443', 'FRONT:8443']) t.equal(await get(host), 'ok', host)
  for (const host of ['attacker.example', 'front', 'front:8444', 'localhost.', '127.0.0.2', '[::2]', 'x y', '']) t.match(await get(host), /^(421 SP_ADMIN_HOST|)$/, host)
  t.equal(await get('attacker.example'), '421 SP_ADMIN_HOST')
  const lan = Object.values((await import('node:os')).networkInterfaces()).flat().find((i) => i !== undefined && i.family === 'IPv4' && !i.internal)
  if (lan !== undefined) {
    t.equal(await get(`${lan.address}:${port}`, lan.address), 'ok', 'the address the client connected to')
    t.equal(await get(`${lan.address}:${port}`), '421 SP_ADMIN_HOST', 'but not on a connection to another address')
  }
})

t.test('token: needed beyond loopback or once configured; public paths are let through, marked', async (t) => {
  const noToken = await gateServer(t, compileGateRules(config({ host: '0.0.0.0' })))
  const withToken = await gateServer(t, compileGateRules(config({ host: '0.0.0.0', admin: { hosts: [], token: { value: 'sekrit' } } })))
  const loopback = await gateServer(t, compileGateRules(config()))
  const req = async (port: number, method: string, path: string, ...headers: string[]): Promise<string> => await ask(port, [`${method} ${path} HTTP/1.1`, 'Host: 127.0.0.1', ...headers, ...(method === 'POST' ? ['Content-Length: 0'] : [])])
  t.equal(await req(loopback, 'GET', '/_session/profiles'), 'ok')
  t.equal(await req(loopback, 'GET', '/_session/health'), 'ok', 'nothing is marked when no token is needed')
  t.equal(await req(noToken, 'GET', '/_session/profiles'), '403 SP_ADMIN_TOKEN_UNSET')
  t.equal(await req(withToken, 'GET', '/_session/profiles'), '401 SP_ADMIN_AUTH_REQUIRED')
  t.equal(await req(withToken, 'GET', '/_session/profiles', 'Authorization: Bearer nope'), '401 SP_ADMIN_AUTH_REQUIRED')
  t.equal(await req(withToken, 'GET', '/_session/profiles', 'Authorization: Bearer sekrit'), 'ok')
  t.equal(await req(withToken, 'GET', '/_session/profiles', 'Authorization: BEARER   sekrit  '), 'ok')
  t.equal(await req(withToken, 'GET', '/_session/profiles', 'Authorization: Bearer sekrit extra'), '401 SP_ADMIN_AUTH_REQUIRED')
  for (const path of ['/_session', '/_session/', '/_session/health', '/_session/health?x=1', '/_session/ca.pem', '/_session/assets/app.js', '/_session/assets/anything']) {
    t.equal(await req(withToken, 'GET', path), 'public', path)
  }
  for (const path of ['/_session/assets/a/b', '/_session/healthz', '/_session/metrics', '/_session//health', '/_session/%68ealth']) t.equal(await req(withToken, 'GET', path), '401 SP_ADMIN_AUTH_REQUIRED', path)
  t.equal(await req(withToken, 'POST', '/_session/health'), '401 SP_ADMIN_AUTH_REQUIRED', 'only reads are public')
  t.equal(await req(withToken, 'GET', '/_session/health', 'Authorization: Bearer sekrit'), 'ok', 'with the token: the full answer')
})

t.test('changes: foreign Origin 403, POST needs the header or the token', async (t) => {
  const rules = compileGateRules(config({ admin: { hosts: ['front.example'], token: null } }))
  const port = await gateServer(t, rules)
  const tokenPort = await gateServer(t, compileGateRules(config({ admin: { hosts: [], token: { value: 'tk' } } })))
  const req = async (method: string, ...headers: string[]): Promise<string> => await ask(port, [`${method} /_session/profiles/a/login HTTP/1.1`, ...headers, 'Content-Length: 0'])
  const host = `Host: localhost:${port}`
  t.equal(await req('POST', host), '403 SP_ADMIN_HEADER_REQUIRED')
  t.equal(await req('POST', host, 'x-session-proxy-admin: 1'), 'ok')
  t.equal(await req('POST', host, 'x-session-proxy-admin: 1', `Origin: http://localhost:${port}`), 'ok')
  t.equal(await req('POST', host, 'x-session-proxy-admin: 1', `Origin: https://localhost:${port}`), 'ok', 'a TLS front on the same authority')
  t.equal(await req('POST', 'Host: localhost', 'x-session-proxy-admin: 1', 'Origin: http://localhost'), 'ok', 'no port on either: port 80')
  t.equal(await req('POST', 'Host: localhost', 'x-session-proxy-admin: 1', 'Origin: https://localhost'), 'ok', 'no port on either: 443 for https')
  t.equal(await req('POST', 'Host: localhost', 'x-session-proxy-admin: 1', 'Origin: http://localhost:81'), '403 SP_ADMIN_ORIGIN')
  t.equal(await req('POST', host, 'x-session-proxy-admin: 1', 'Origin: https://front.example'), 'ok', 'admin.hosts')
  for (const origin of ['http://attacker.example', 'null', `http://127.0.0.1:${port}`, `ftp://localhost:${port}`, 'not a url', `http://localhost:${port + 1}`]) {
    t.equal(await req('POST', host, 'x-session-proxy-admin: 1', `Origin: ${origin}`), '403 SP_ADMIN_ORIGIN', origin)
  }
  for (const method of ['PUT', 'DELETE', 'PATCH']) {
    t.equal(await req(method, host), 'ok', `${method} is preflighted by browsers: no header needed`)
    t.equal(await req(method, host, 'Origin: http://attacker.example'), '403 SP_ADMIN_ORIGIN', method)
  }
  t.equal(await req('GET', host, 'Origin: http://attacker.example'), 'ok', 'reads are not checked')
  t.equal(await ask(port, ['DELETE /_session/profiles/a/har HTTP/1.0', `Origin: http://localhost:${port}`, '']), 'ok', 'no Host (HTTP/1.0): the own names on the listening port')
  t.equal(await ask(port, ['DELETE /_session/profiles/a/har HTTP/1.0', 'Origin: http://localhost:1', '']), '403 SP_ADMIN_ORIGIN')
  const tok = async (...headers: string[]): Promise<string> => await ask(tokenPort, ['POST /_session/profiles/a/login HTTP/1.1', 'Host: 127.0.0.1', ...headers, 'Content-Length: 0'])
  t.equal(await tok('Authorization: Bearer tk'), 'ok', 'the token makes the POST non-simple')
  t.equal(await tok('Authorization: Bearer tk', 'Origin: http://attacker.example'), '403 SP_ADMIN_ORIGIN')
})

t.test('a path with a bad percent-encoding is refused before routing', async (t) => {
  const port = await gateServer(t, compileGateRules(config()))
  t.equal(await ask(port, ['GET /_session/profiles/%zz HTTP/1.1', 'Host: localhost']), '400 SP_BAD_URL')
  t.equal(await ask(port, ['GET /_session/profiles/a?q=%zz HTTP/1.1', 'Host: localhost']), 'ok', 'the query is the route\'s to judge')
})
