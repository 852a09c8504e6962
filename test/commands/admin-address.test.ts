/** Where the CLI finds the admin API, the headers it sends, and how it reports failures. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import http from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { ADMIN_HEADER, adminCall, adminHost, adminTarget } from '../../src/commands/admin-address.js'
import { ADMIN_HEADER as GATE_HEADER } from '../../src/admin/gate.js'
import { ConfigError } from '../../src/errors.js'

t.test('adminHost: wildcards are reached on loopback; IPv6 in brackets', async (t) => {
  t.equal(adminHost('0.0.0.0'), '127.0.0.1')
  t.equal(adminHost(''), '127.0.0.1')
  t.equal(adminHost('::'), '[::1]')
  t.equal(adminHost('[::]'), '[::1]')
  t.equal(adminHost('fd00::1'), '[fd00::1]')
  t.equal(adminHost('10.0.0.2'), '10.0.0.2')
})

t.test('adminTarget: the custom header always, the token from admin.token', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sp-cli-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  t.equal(ADMIN_HEADER, GATE_HEADER, 'the CLI sends what the gate asks for')
  const plain = adminTarget({ host: '127.0.0.1', port: '9000' }, {})
  t.same(plain, { base: 'http://127.0.0.1:9000', headers: { [ADMIN_HEADER]: '1' } })
  const file = join(dir, 'c.json')
  writeFileSync(file, JSON.stringify({ port: 9100, admin: { token: { env: 'SP_CLI_TOKEN' } } }))
  t.same(adminTarget({ config: file }, { SP_CLI_TOKEN: 'tk' }), { base: 'http://127.0.0.1:9100', headers: { [ADMIN_HEADER]: '1', authorization: 'Bearer tk' } })
  t.throws(() => adminTarget({ config: file }, {}), ConfigError, 'an unreadable token is a configuration error')
  t.throws(() => adminTarget({ port: 'x' }, {}), ConfigError)
})

t.test('adminCall: JSON on success, the API\'s message on failure, a hint when unreachable', async (t) => {
  const seen: http.IncomingHttpHeaders[] = []
  const server = http.createServer((req, res) => {
    seen.push(req.headers)
    if (req.url === '/ok') { res.writeHead(200, { 'content-type': 'application/json' }); res.end('{"a":1}'); return }
    if (req.url === '/json') { res.writeHead(403, { 'content-type': 'application/json' }); res.end('{"error":"SP_X","message":"refused because"}'); return }
    res.writeHead(500); res.end('plain failure\n')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const target = { base: `http://127.0.0.1:${(server.address() as { port: number }).port}`, headers: { [ADMIN_HEADER]: '1', authorization: 'Bearer z' } }
  t.same(await adminCall(target, 'POST', '/ok'), { a: 1 })
  t.match(seen[0], { [ADMIN_HEADER]: '1', authorization: 'Bearer z' })
  await t.rejects(adminCall(target, 'GET', '/json'), { message: 'refused because' })
  await t.rejects(adminCall(target, 'GET', '/text'), { message: 'plain failure' })
  const closed = http.createServer()
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
  const port = (closed.address() as { port: number }).port
  await new Promise<void>((resolve) => closed.close(() => resolve()))
  await t.rejects(adminCall({ base: `http://127.0.0.1:${port}`, headers: {} }, 'GET', '/'), { message: /cannot reach the proxy at .*ECONNREFUSED.*--host\/--port/ })
})
