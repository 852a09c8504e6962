/** h2c refusals (src/proxy/h2-refuse.ts), read by a real node:http2 client. */
import http2 from 'node:http2'
import net, { type AddressInfo } from 'node:net'
import t from 'tap'
import { h2cRefusal, h2RefusalFrames, isH2cUpgrade } from '../../src/proxy/h2-refuse.js'
import type { IncomingMessage } from 'node:http'

/** A server that answers whatever the client's first bytes are with h2RefusalFrames. */
async function refusingServer (withRequest: boolean): Promise<{ port: number, close: () => void }> {
  const server = net.createServer((socket) => {
    socket.on('error', () => {})
    let got = Buffer.alloc(0)
    socket.on('data', (c: Buffer) => {
      got = Buffer.concat([got, c])
      // Wait for the client's first HEADERS frame when the case has one.
      if (withRequest && !got.subarray(24).includes(Buffer.from([0x01, 0x05, 0x00, 0x00, 0x00, 0x01])) && !got.subarray(24).includes(Buffer.from([0x01, 0x04, 0x00, 0x00, 0x00, 0x01]))) return
      if (socket.writableEnded) return
      socket.end(h2RefusalFrames(h2cRefusal(), withRequest ? got : got.subarray(0, 24)))
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return { port: (server.address() as AddressInfo).port, close: () => server.close() }
}

t.test('a prior-knowledge client reads a 501 with the error code', async (t) => {
  const server = await refusingServer(true)
  t.teardown(server.close)
  const client = http2.connect(`http://127.0.0.1:${server.port}`)
  client.on('error', () => {})
  t.teardown(() => client.destroy())
  const r = await new Promise<{ head: http2.IncomingHttpHeaders, body: string }>((resolve, reject) => {
    const s = client.request({ ':path': '/' })
    let head: http2.IncomingHttpHeaders = {}
    const chunks: Buffer[] = []
    s.on('response', (h) => { head = h })
    s.on('data', (c: Buffer) => chunks.push(c))
    s.on('end', () => resolve({ head, body: Buffer.concat(chunks).toString() }))
    s.on('error', reject)
  })
  t.equal(r.head[':status'], 501)
  t.equal(r.head['x-session-proxy-error'], 'SP_H2C_UNSUPPORTED')
  t.equal(r.head['content-length'], String(Buffer.byteLength(r.body)))
  t.match(r.body, /^session-proxy: cleartext HTTP\/2 \(h2c\) is not supported/)
})

t.test('without a request, GOAWAY says HTTP_1_1_REQUIRED and carries the code', async (t) => {
  const server = await refusingServer(false)
  t.teardown(server.close)
  const client = http2.connect(`http://127.0.0.1:${server.port}`)
  client.on('error', () => {})
  t.teardown(() => client.destroy())
  const [code, , data] = await new Promise<[number, number, Buffer]>((resolve) => client.once('goaway', (c: number, last: number, d: Buffer) => resolve([c, last, d])))
  t.equal(code, http2.constants.NGHTTP2_HTTP_1_1_REQUIRED)
  t.match(data.toString(), /^SP_H2C_UNSUPPORTED: cleartext HTTP\/2/)
})

t.test('isH2cUpgrade', async (t) => {
  const req = (upgrade: string | undefined): IncomingMessage => ({ headers: { upgrade } }) as unknown as IncomingMessage
  t.ok(isH2cUpgrade(req('h2c')))
  t.ok(isH2cUpgrade(req('websocket, H2C')))
  t.notOk(isH2cUpgrade(req('websocket')))
  t.notOk(isH2cUpgrade(req(undefined)))
})
