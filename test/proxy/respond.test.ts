/** The one error writer: ServerResponse refusals and raw-socket refusals look the same to a client. */
import http from 'node:http'
import net from 'node:net'
import t from 'tap'
import { SessionProxyError } from '../../src/errors.js'
import { asProxyError, ERROR_HEADER, rawErrorResponse, sendRawError, statusText } from '../../src/proxy/respond.js'
import { parseHead } from '../helpers/raw-client.js'
import { writeRawError } from '../../src/proxy/websocket.js'

async function pair (): Promise<{ server: net.Socket, client: net.Socket, close: () => Promise<void> }> {
  const srv = net.createServer()
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  const accepted = new Promise<net.Socket>((resolve) => srv.once('connection', resolve))
  const client = net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1')
  client.on('error', () => {})
  const server = await accepted
  return { server, client, close: async () => { client.destroy(); server.destroy(); await new Promise<void>((resolve) => srv.close(() => resolve())) } }
}

t.test('rawErrorResponse: status text, code header, length, connection close', async (t) => {
  const r = parseHead(rawErrorResponse(new SessionProxyError('SP_HEADERS_TOO_LARGE', 431, 'too big')))
  t.equal(r.status, 431)
  t.match(r.head, /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/)
  t.equal(r.headers[ERROR_HEADER], 'SP_HEADERS_TOO_LARGE')
  t.equal(r.headers.connection, 'close')
  t.equal(Number(r.headers['content-length']), Buffer.byteLength(r.body))
  t.equal(r.body, 'session-proxy: too big\n')
  t.notOk('proxy-authenticate' in r.headers)
  const auth = parseHead(rawErrorResponse(new SessionProxyError('SP_PROXY_AUTH_REQUIRED', 407, 'who?')))
  t.match(auth.headers['proxy-authenticate'] ?? '', /^Basic realm=/)
  t.equal(statusText(599), 'Error', 'unknown statuses still get a reason phrase')
  t.equal(writeRawError, sendRawError, 'websocket.ts re-exports the one writer')
})

t.test('sendRawError: the client reads the whole refusal, then the socket closes', async (t) => {
  const { server, client, close } = await pair()
  t.teardown(close)
  const got: Buffer[] = []
  client.on('data', (c: Buffer) => got.push(c))
  const closed = new Promise<void>((resolve) => server.once('close', () => resolve()))
  client.write('extra bytes the refused client still sends')
  sendRawError(server, new SessionProxyError('SP_OVERLOADED', 503, 'busy'))
  await new Promise((resolve) => client.once('end', resolve))
  const r = parseHead(Buffer.concat(got).toString('latin1'))
  t.equal(r.status, 503)
  t.equal(r.headers[ERROR_HEADER], 'SP_OVERLOADED')
  await closed
  t.pass('the refused socket closed')
})

t.test('sendRawError on a destroyed or unwritable socket does nothing harmful', async (t) => {
  const { server, close } = await pair()
  t.teardown(close)
  server.destroy()
  sendRawError(server, new SessionProxyError('SP_INTERNAL', 500, 'x'))
  const b = await pair()
  t.teardown(b.close)
  b.server.end()
  sendRawError(b.server, new SessionProxyError('SP_INTERNAL', 500, 'x'))
  await new Promise((resolve) => b.server.once('close', resolve))
  t.pass()
})

t.test('sendRawError lingers at most lingerMs for a client that never closes', async (t) => {
  const { server, close } = await pair()
  t.teardown(close)
  const closed = new Promise<void>((resolve) => server.once('close', () => resolve()))
  sendRawError(server, new SessionProxyError('SP_OVERLOADED', 503, 'busy'), 50)
  await closed
  t.pass('destroyed after the linger')
})

t.test('asProxyError wraps anything else as SP_INTERNAL', async (t) => {
  const e = asProxyError(new Error('boom'))
  t.equal(e.code, 'SP_INTERNAL')
  t.equal(e.statusCode, 500)
  const same = new SessionProxyError('SP_BAD_TARGET', 400, 'x')
  t.equal(asProxyError(same), same)
  t.equal(http.STATUS_CODES[e.statusCode], statusText(500))
})
