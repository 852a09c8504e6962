/** The Flow object and its header views (src/pipeline/flow.ts). */
import t from 'tap'
import { Flow, HeaderList, flowKind } from '../../src/pipeline/flow.js'

t.test('HeaderList works in place on a flat list, names case-insensitive', async (t) => {
  const raw = ['Host', 'a.test', 'Cookie', 'x=1', 'Accept', '*/*', 'cookie', 'y=2']
  const h = new HeaderList(raw)
  t.equal(h.get('HOST'), 'a.test')
  t.equal(h.get('cookie'), 'x=1', 'the first value')
  t.ok(h.has('accept'))
  t.notOk(h.has('x-missing'))
  t.equal(h.get('x-missing'), undefined)
  h.set('COOKIE', 'z=3')
  t.same(raw, ['Host', 'a.test', 'Cookie', 'z=3', 'Accept', '*/*'], 'set replaces every value of the name')
  h.set('X-New', 'v')
  t.same(raw.slice(-2), ['X-New', 'v'], 'set adds an absent header')
  t.equal(h.delete('accept'), true)
  t.equal(h.delete('accept'), false)
  t.same([...h], [['Host', 'a.test'], ['Cookie', 'z=3'], ['X-New', 'v']], 'iteration yields pairs in order')
  t.same([...h.entries()], [...h])
})

t.test('respond() only from request hooks; the answer is normalised', async (t) => {
  const f = new Flow(7, 'alice', 'https', 'GET', 'https://a.test/x', ['host', 'a.test'])
  t.equal(f.id, 7)
  t.equal(f.profile, 'alice')
  t.equal(f.kind, 'https')
  t.equal(f.request.url, 'https://a.test/x')
  t.equal(f.request.headers.get('host'), 'a.test')
  t.equal(f.response, undefined)
  t.throws(() => f.respond({ body: 'x' }), /only be called from a request hook/)
  f.inRequest = true
  f.respond({ status: 201, headers: { 'content-type': 'text/plain', 'transfer-encoding': 'chunked', 'content-length': '99' }, body: 'héllo' })
  t.same(f.answer, { status: 201, headers: ['content-type', 'text/plain', 'content-length', '6'], body: Buffer.from('héllo') }, 'framing is the proxy\'s')
  f.respond({ headers: [['x-a', '1'], ['x-a', '2']], body: new Uint8Array([1, 2]) })
  t.same(f.answer, { status: 200, headers: ['x-a', '1', 'x-a', '2', 'content-length', '2'], body: Buffer.from([1, 2]) }, 'pairs keep repeated names')
  f.respond({ status: 204, headers: { 'content-length': '5' }, body: 'ignored' })
  t.same(f.answer, { status: 204, headers: [], body: Buffer.alloc(0) }, 'a 204 has no body')
  t.throws(() => f.respond({ status: 99 }), /status 99/)
  t.throws(() => f.respond({ headers: { 'bad name': 'x' } }), /Header name/)
  t.throws(() => f.respond({ headers: { ok: 'line\nbreak' } }), /Invalid character/)
})

t.test('response and error views', async (t) => {
  const f = new Flow(1, 'default', 'http', 'GET', 'http://a.test/', [])
  const headers = ['server', 'x', 'content-type', 'text/html']
  f.setResponse(404, headers)
  t.equal(f.response?.status, 404)
  f.response?.headers.delete('Server')
  t.same(headers, ['content-type', 'text/html'], 'changes reach the list the proxy sends')
  f.setError({ code: 'SP_UPSTREAM_REFUSED', statusCode: 502, message: 'refused' })
  t.same(f.error, { code: 'SP_UPSTREAM_REFUSED', status: 502, message: 'refused' })
})

t.test('flowKind', async (t) => {
  t.equal(flowKind('http', false), 'http')
  t.equal(flowKind('https', false), 'https')
  t.equal(flowKind('http', true), 'reverse')
})
