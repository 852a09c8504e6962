import { gzipSync } from 'node:zlib'
import t from 'tap'
import { cleanup, curl, startProxy, startUpstream, type UpstreamHandler } from '../helpers/proxy.js'
import { harErrors } from '../helpers/har-validate.js'
import { eventsOf } from '../helpers/events.js'

interface HarNV { name: string, value: string }
interface HarEntry {
  startedDateTime: string
  time: number
  request: { method: string, url: string, headers: HarNV[], queryString: HarNV[], cookies: HarNV[], bodySize: number }
  response: { status: number, statusText: string, headers: HarNV[], cookies: Array<HarNV & { path?: string, httpOnly?: boolean }>, content: { size: number, mimeType: string, text?: string, encoding?: string, compression?: number, comment?: string }, redirectURL: string, bodySize: number, _error?: { code: string } }
  timings: { send: number, wait: number, receive: number }
  _requestId: number
  _profile: string
  comment?: string
}
interface Har { log: { version: string, creator: { name: string, version: string }, entries: HarEntry[] } }

const PNG = Buffer.from('89504e470d0a1a0a0000000d4948445200000001000000010806000000', 'hex')

const app: UpstreamHandler = (req, res) => {
  const u = new URL(req.url!, 'http://x')
  switch (u.pathname) {
    case '/login':
      req.resume()
      req.on('end', () => {
        res.writeHead(302, { location: '/home', 'set-cookie': ['JSESSIONID=S3CRET-ID; Path=/; HttpOnly', 'theme=dark; Path=/'] })
        res.end()
      })
      return
    case '/json':
      res.writeHead(200, { 'content-type': 'application/json' })
      res.end(JSON.stringify({ cookie: req.headers.cookie ?? null, auth: req.headers.authorization ?? null }))
      return
    case '/gz':
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'content-encoding': 'gzip' })
      res.end(gzipSync('hello, compressed world'))
      return
    case '/big':
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.end('x'.repeat(5000))
      return
    case '/png':
      res.writeHead(200, { 'content-type': 'image/png' })
      res.end(PNG)
      return
    default:
      res.writeHead(404, { 'content-type': 'text/plain' })
      res.end('no')
  }
}

async function har (url: string, profile: string): Promise<Har> {
  const r = await fetch(`${url}/_session/profiles/${profile}/har`)
  if (r.status !== 200) throw new Error(`har ${r.status}`)
  return await r.json() as Har
}

const header = (list: HarNV[], name: string): string | undefined => list.find((h) => h.name.toLowerCase() === name)?.value

t.test('capture on in the config: a HAR 1.2 file of real traffic, secrets redacted', async (t) => {
  const up = await startUpstream(app)
  const proxy = await startProxy({
    config: {
      hosts: [{ match: '127.0.0.1', auth: { type: 'basic', username: 'u', password: { value: 'pw' } } }],
      profiles: { cap: { capture: { enabled: true, maxEntries: 50, maxBodyBytes: 1000 } } }
    }
  })
  t.teardown(async () => { await proxy.stop(); await up.close(); cleanup(proxy.dataDir) })
  const x = ['-x', `http://cap@127.0.0.1:${proxy.port}`]

  t.equal((await curl([...x, '-d', 'user=a&password=b', `${up.origin}/login?next=%2Fhome&x=1`])).status, 302)
  t.equal((await curl([...x, `${up.origin}/json`])).status, 200)
  await curl([...x, `${up.origin}/gz`])
  await curl([...x, `${up.origin}/big`])
  await curl([...x, '-o', '/dev/null', `${up.origin}/png`])
  await curl([...x, `${up.origin}/missing`])
  await curl(['-x', proxy.url, `${up.origin}/json`])

  const doc = await har(proxy.url, 'cap')
  t.same(harErrors(doc), [], 'valid HAR 1.2 (har-schema) with consistent timings')
  t.match(doc.log, { version: '1.2', creator: { name: 'session-proxy', version: /^\d+\.\d+\.\d+/ } })
  t.equal(doc.log.entries.length, 6, 'only the capturing profile')
  const [login, json, gz, big, png, missing] = doc.log.entries as [HarEntry, HarEntry, HarEntry, HarEntry, HarEntry, HarEntry]

  t.match(login.request, { method: 'POST', url: `${up.origin}/login?next=%2Fhome&x=1`, bodySize: 17 })
  t.same(login.request.queryString, [{ name: 'next', value: '/home' }, { name: 'x', value: '1' }])
  t.match(login.response, { status: 302, statusText: 'Found', redirectURL: '/home', bodySize: 0 })
  t.match(login.response.cookies, [{ name: 'JSESSIONID', value: '<redacted>', path: '/', httpOnly: true }, { name: 'theme', value: '<redacted>' }])
  t.equal(header(login.response.headers, 'set-cookie'), 'JSESSIONID=<redacted>; Path=/; HttpOnly', 'attributes stay, the value goes')
  t.equal(header(login.request.headers, 'authorization'), 'Basic <redacted>', 'the default auth header is redacted too')
  t.equal(login._profile, 'cap')
  t.match(login.comment, /redacted/)
  const withoutBodies = doc.log.entries.map((e) => ({ ...e, response: { ...e.response, content: null } }))
  t.notMatch(JSON.stringify(withoutBodies), /S3CRET-ID|dark|dTpwdw==/, 'no cookie value or credential in any header or cookie list')

  t.equal(header(json.request.headers, 'cookie'), 'JSESSIONID=<redacted>; theme=<redacted>', 'the cookies the proxy added, by name')
  t.same(json.request.cookies, [{ name: 'JSESSIONID', value: '<redacted>' }, { name: 'theme', value: '<redacted>' }])
  t.match(json.response.content, { mimeType: 'application/json', text: /^\{"cookie":"JSESSIONID=S3CRET-ID; theme=dark"/ }, 'the body is what the upstream answered (bodies are not redacted)')
  t.ok(json.timings.wait >= 0 && json.timings.receive >= 0)

  t.match(gz.response.content, { mimeType: 'text/plain; charset=utf-8', text: 'hello, compressed world', size: 23 })
  t.equal(gz.response.content.compression, 23 - gz.response.bodySize, 'compression = size - bodySize')
  t.match(big.response.content, { size: 5000, text: undefined, comment: /longer than the capture limit \(1000 of 5000 bytes kept\)/ })
  t.match(png.response.content, { mimeType: 'image/png', encoding: 'base64', text: PNG.toString('base64') })
  t.match(missing.response, { status: 404, statusText: 'Not Found' })

  const set = (await eventsOf(proxy, 'cookie.set', 'cap')).find((e) => (e.cookie as { name: string }).name === 'JSESSIONID')!
  t.equal(login._requestId, set.requestId, 'the HAR entry and the event point at the same request')

  const dl = await fetch(`${proxy.url}/_session/profiles/cap/har?download=1`)
  t.equal(dl.headers.get('content-disposition'), 'attachment; filename="cap.har"')
  t.match(dl.headers.get('content-type'), /^application\/json/)
})

t.test('capture switched at run time; redact false keeps values; a failed request is an entry', async (t) => {
  const up = await startUpstream(app)
  const proxy = await startProxy()
  t.teardown(async () => { await proxy.stop(); await up.close(); cleanup(proxy.dataDir) })
  const put = async (body: unknown): Promise<Response> => await fetch(`${proxy.url}/_session/profiles/default/capture`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })

  await curl(['-x', proxy.url, `${up.origin}/json`])
  t.same((await har(proxy.url, 'default')).log.entries, [], 'off by default')
  t.match(await (await fetch(`${proxy.url}/_session/profiles/default/capture`)).json(), { enabled: false, maxEntries: 200, maxBodyBytes: 65536, redact: true, entries: 0 })

  const on = await put({ enabled: true, redact: false, maxEntries: 2 })
  t.equal(on.status, 200)
  t.match(await on.json(), { profile: 'default', enabled: true, redact: false, maxEntries: 2 })
  await curl(['-x', proxy.url, '-d', 'a=1', `${up.origin}/login`])
  await curl(['-x', proxy.url, `${up.origin}/json`])
  const doc = await har(proxy.url, 'default')
  t.same(harErrors(doc), [])
  t.equal(header(doc.log.entries[1]!.request.headers, 'cookie'), 'JSESSIONID=S3CRET-ID; theme=dark', 'redact: false keeps the values')

  await curl(['-x', proxy.url, 'http://127.0.0.1:1/nothing-listens-here'])
  const after = await har(proxy.url, 'default')
  t.equal(after.log.entries.length, 2, 'maxEntries: the oldest is dropped')
  t.same(harErrors(after), [])
  t.match(after.log.entries[1]!.response, { status: 502, _error: { code: /^SP_UPSTREAM_/ } })

  t.equal((await put({ enabled: false })).status, 200)
  await curl(['-x', proxy.url, `${up.origin}/json`])
  t.equal((await har(proxy.url, 'default')).log.entries.length, 2, 'nothing captured once off; entries are kept')
  t.match(await (await fetch(`${proxy.url}/_session/profiles/default/har`, { method: 'DELETE' })).json(), { deleted: 2 })
  t.same((await har(proxy.url, 'default')).log.entries, [])

  for (const bad of [{ enabled: 'yes' }, { maxEntries: 0 }, { nope: 1 }, [1]]) {
    const r = await put(bad)
    t.equal(r.status, 400, JSON.stringify(bad))
    t.match(await r.json(), { error: 'SP_CAPTURE_INVALID' })
  }
})
