/** The admin API's error shape: what a client is told, and the raw writer the gate uses. */
import http from 'node:http'
import t from 'tap'
import { describeAdminError, INTERNAL_MESSAGE, writeAdminError } from '../../src/admin/admin-errors.js'
import { ConfigError, SessionProxyError, UpstreamError } from '../../src/errors.js'

t.test('describeAdminError', async (t) => {
  t.same(describeAdminError(new SessionProxyError('SP_X', 404, 'no x')), { status: 404, body: { error: 'SP_X', message: 'no x' } })
  t.same(describeAdminError(new UpstreamError('SP_UPSTREAM_ERROR', 502, 'h', 'login failed at step a')), { status: 502, body: { error: 'SP_UPSTREAM_ERROR', message: 'login failed at step a' } }, 'a failed hop keeps its message')
  t.same(describeAdminError(new ConfigError('cannot read secret file /run/secrets/pw')), { status: 500, body: { error: 'SP_CONFIG_INVALID', message: INTERNAL_MESSAGE } }, 'a 500 names no file')
  const fst = (code: string, statusCode: number, message = 'm'): Error => Object.assign(new Error(message), { code, statusCode })
  t.match(describeAdminError(fst('FST_ERR_CTP_BODY_TOO_LARGE', 413)), { status: 413, body: { error: 'SP_ADMIN_BODY_TOO_LARGE' } })
  t.match(describeAdminError(fst('FST_ERR_CTP_INVALID_MEDIA_TYPE', 415, 'Unsupported Media Type')), { status: 415, body: { error: 'SP_ADMIN_MEDIA_TYPE', message: /send application\/json/ } })
  t.match(describeAdminError(fst('FST_ERR_CTP_EMPTY_JSON_BODY', 400)), { status: 400, body: { error: 'SP_ADMIN_BAD_JSON' } })
  t.match(describeAdminError(fst('FST_ERR_CTP_INVALID_JSON_BODY', 400)), { status: 400, body: { error: 'SP_ADMIN_BAD_JSON' } })
  t.match(describeAdminError(Object.assign(new SyntaxError('Object contains forbidden prototype property'), { statusCode: 400 })), { status: 400, body: { error: 'SP_ADMIN_BAD_JSON' } })
  t.match(describeAdminError(fst('FST_ERR_OTHER', 400, 'odd')), { status: 400, body: { error: 'SP_BAD_REQUEST', message: 'odd' } })
  t.match(describeAdminError({ validation: [], message: 'body/x must be string' }), { status: 400, body: { error: 'SP_BAD_REQUEST' } })
  t.match(describeAdminError({ statusCode: 404 }), { status: 404, body: { error: 'SP_BAD_REQUEST', message: 'bad request' } })
  for (const unexpected of [new Error('ENOENT /opt/app/x'), fst('X', 503), fst('X', 302), null, 'text', 42]) t.equal(describeAdminError(unexpected), null, String(unexpected))
})

t.test('writeAdminError: JSON, the code header, Bearer challenge on 401, no body for HEAD; after headers it cuts', async (t) => {
  const server = http.createServer((req, res) => {
    if (req.url === '/late') { res.writeHead(200); res.write('x'); writeAdminError(res, new SessionProxyError('SP_X', 400, 'late')); return }
    writeAdminError(res, new SessionProxyError(req.url === '/401' ? 'SP_ADMIN_AUTH_REQUIRED' : 'SP_ADMIN_HOST', req.url === '/401' ? 401 : 421, 'no'))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { server.closeAllConnections(); server.close() })
  const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`
  const r = await fetch(`${url}/x`)
  t.equal(r.status, 421)
  t.equal(r.headers.get('x-session-proxy-error'), 'SP_ADMIN_HOST')
  t.equal(r.headers.get('cache-control'), 'no-store')
  t.same(await r.json(), { error: 'SP_ADMIN_HOST', message: 'no' })
  t.equal(r.headers.get('www-authenticate'), null)
  const a = await fetch(`${url}/401`)
  t.equal(a.headers.get('www-authenticate'), 'Bearer realm="session-proxy admin"')
  const head = await fetch(`${url}/x`, { method: 'HEAD' })
  t.equal(head.status, 421)
  t.equal(await head.text(), '')
  await t.rejects(async () => { await (await fetch(`${url}/late`)).text() }, 'a response already started is cut')
})
