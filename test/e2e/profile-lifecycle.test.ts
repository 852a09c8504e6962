/**
 * Profile lifecycle through the admin API (issue 13): create, delete (files
 * gone, even with an exchange in flight), one-cookie edits, persist: false,
 * readOnly, session.json, and a profile list that does not read every jar.
 */
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { cleanup, startProxy, startUpstream, tempDir, viaProxy, echoCookies, type ProxyProcess, type Upstream } from '../helpers/proxy.js'

const ADMIN = { 'x-session-proxy-admin': '1' }

async function admin (proxy: ProxyProcess, method: string, path: string, body?: unknown): Promise<{ status: number, json: any, headers: Headers }> {
  const r = await fetch(`${proxy.url}${path}`, {
    method,
    headers: body === undefined ? ADMIN : { ...ADMIN, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  const text = await r.text()
  let json: unknown = null
  try { json = JSON.parse(text) } catch {}
  return { status: r.status, json, headers: r.headers }
}

let upstream: Upstream
t.before(async () => { upstream = await startUpstream(echoCookies()) })
t.teardown(async () => { await upstream.close() })

const asProfile = (name: string): Record<string, string> => ({ 'x-session-profile': name })

t.test('create, edit one cookie, delete: 201/409, 200/400, 204/404/409, files gone', async (t) => {
  const proxy = await startProxy({ config: { profiles: { fixed: {} } } })
  t.teardown(async () => { await proxy.stop(); cleanup(proxy.dataDir) })
  const jar = join(proxy.dataDir, 'jars', 'bob.jsonl')

  t.equal((await admin(proxy, 'POST', '/_session/profiles', { name: 'bob' })).status, 201, 'created')
  t.ok(existsSync(jar), 'an empty jar file, so it is listed after a restart')
  const again = await admin(proxy, 'POST', '/_session/profiles', { name: 'bob' })
  t.equal(again.status, 409)
  t.equal(again.json.error, 'SP_PROFILE_EXISTS')
  t.equal((await admin(proxy, 'POST', '/_session/profiles', { name: '../x' })).status, 400, 'a bad name is refused')

  const put = await admin(proxy, 'PUT', '/_session/profiles/bob/cookies/sid', { value: 'abc', domain: '127.0.0.1', path: '/', httpOnly: true })
  t.equal(put.status, 200)
  t.match(put.json, { name: 'sid', value: 'abc', domain: '127.0.0.1', path: '/', httpOnly: true, secure: false, expires: null, hostOnly: true })
  const listed = await admin(proxy, 'GET', '/_session/profiles/bob/cookies')
  t.same(listed.json.cookies, [put.json], 'the answer is the cookie as GET /cookies lists it')
  const r = await viaProxy(proxy.port, `${upstream.origin}/x`, { headers: asProfile('bob') })
  t.equal(JSON.parse(r.body).cookie, 'sid=abc', 'the next request carries it')
  t.match(readFileSync(jar, 'utf8'), /"sid"/, 'journaled')

  for (const bad of [{ value: 'a;b', domain: '127.0.0.1' }, { value: 'x', domain: '' }, { value: 'x', domain: 'a', path: 'nope' }, { value: 'x', domain: 'a', expires: 'tomorrow' }, { value: 'x\r\n', domain: 'a' }, 'text']) {
    const b = await admin(proxy, 'PUT', '/_session/profiles/bob/cookies/sid', bad)
    t.equal(b.status, 400, `refused: ${JSON.stringify(bad)}`)
    t.equal(b.json.error, 'SP_COOKIE_INVALID')
  }
  t.equal((await admin(proxy, 'PUT', '/_session/profiles/bob/cookies/bad%3Bname', { value: 'x', domain: 'a' })).json.error, 'SP_COOKIE_INVALID', 'a name the jar refuses')
  t.equal((await admin(proxy, 'GET', '/_session/profiles/bob/cookies')).json.cookies[0].value, 'abc', 'a refused edit changed nothing')
  t.equal((await admin(proxy, 'PUT', '/_session/profiles/newcomer/cookies/sid', { value: 'x', domain: 'a' })).status, 200, 'a PUT creates the profile, as PUT cookies.txt does')
  t.equal((await admin(proxy, 'DELETE', '/_session/profiles/nobody/cookies/sid')).status, 404, 'a DELETE does not')

  const del = await admin(proxy, 'DELETE', '/_session/profiles/bob')
  t.equal(del.status, 204)
  t.notOk(existsSync(jar), 'the jar file is gone')
  t.notOk((await admin(proxy, 'GET', '/_session/profiles')).json.profiles.some((p: { name: string }) => p.name === 'bob'), 'not listed')
  t.equal((await admin(proxy, 'DELETE', '/_session/profiles/bob')).status, 404, 'unknown now')
  const declared = await admin(proxy, 'DELETE', '/_session/profiles/fixed')
  t.equal(declared.status, 409)
  t.equal(declared.json.error, 'SP_PROFILE_DECLARED')
  const after = await viaProxy(proxy.port, `${upstream.origin}/x`, { headers: asProfile('bob') })
  t.equal(JSON.parse(after.body).cookie, null, 'the name starts empty')
})

t.test('a response in flight while its profile is deleted does not bring the file back', async (t) => {
  let release: () => void = () => {}
  const slow = await startUpstream((_req, res) => {
    release = () => { res.writeHead(200, { 'set-cookie': 'late=1; Path=/' }); res.end('ok') }
  })
  const proxy = await startProxy()
  t.teardown(async () => { await proxy.stop(); await slow.close(); cleanup(proxy.dataDir) })
  const jar = join(proxy.dataDir, 'jars', 'carol.jsonl')
  await viaProxy(proxy.port, `${upstream.origin}/?set=a%3D1`, { headers: asProfile('carol') })
  t.ok(existsSync(jar))
  const inFlight = viaProxy(proxy.port, `${slow.origin}/`, { headers: asProfile('carol') })
  while (slow.requests.length === 0) await new Promise((resolve) => setTimeout(resolve, 20))
  t.equal((await admin(proxy, 'DELETE', '/_session/profiles/carol')).status, 204)
  release()
  const r = await inFlight
  t.equal(r.status, 200)
  t.match(r.headers['set-cookie'], ['late=1; Path=/'], 'the client still gets its Set-Cookie')
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.notOk(existsSync(jar), 'no file came back')
  t.equal((await admin(proxy, 'GET', '/_session/profiles/carol/cookies')).status, 404, 'nor the profile')
})

t.test('persist: false writes no file and is gone after a restart; readOnly never stores a response cookie', async (t) => {
  const dataDir = tempDir()
  const config = { profiles: { scratch: { persist: false }, fixture: { readOnly: true } } }
  let proxy = await startProxy({ dataDir, config })
  t.teardown(async () => { await proxy.stop(); cleanup(dataDir) })
  await viaProxy(proxy.port, `${upstream.origin}/?set=s%3D1`, { headers: asProfile('scratch') })
  t.equal(JSON.parse((await viaProxy(proxy.port, `${upstream.origin}/`, { headers: asProfile('scratch') })).body).cookie, 's=1', 'kept in memory')
  t.equal((await admin(proxy, 'PUT', '/_session/profiles/scratch/cookies/t', { value: '2', domain: '127.0.0.1' })).status, 200)
  t.notOk(existsSync(join(dataDir, 'jars', 'scratch.jsonl')), 'no file written')
  t.notOk(existsSync(join(dataDir, 'events', 'scratch.jsonl')), 'no events file either (events persist by default)')

  t.equal((await admin(proxy, 'PUT', '/_session/profiles/fixture/cookies/sid', { value: 'shared', domain: '127.0.0.1' })).status, 200, 'admin writes still work')
  const fileBefore = readFileSync(join(dataDir, 'jars', 'fixture.jsonl'), 'utf8')
  const r = await viaProxy(proxy.port, `${upstream.origin}/?set=sid%3Dchanged&set=other%3D1`, { headers: asProfile('fixture') })
  t.equal(JSON.parse(r.body).cookie, 'sid=shared', 'the request carries the stored cookies')
  t.same(r.headers['set-cookie'], ['sid=changed', 'other=1'], 'Set-Cookie is passed to the client')
  const stored = (await admin(proxy, 'GET', '/_session/profiles/fixture/cookies')).json.cookies
  t.same(stored.map((c: { name: string, value: string }) => `${c.name}=${c.value}`), ['sid=shared'], 'the jar is unchanged')
  t.equal(readFileSync(join(dataDir, 'jars', 'fixture.jsonl'), 'utf8'), fileBefore, 'the file is unchanged')
  t.equal(JSON.parse((await viaProxy(proxy.port, `${upstream.origin}/`, { headers: asProfile('fixture') })).body).cookie, 'sid=shared')

  await proxy.stop()
  proxy = await startProxy({ dataDir, config })
  t.same((await admin(proxy, 'GET', '/_session/profiles/scratch/cookies')).json.cookies, [], 'gone after the restart')
  t.notOk(existsSync(join(dataDir, 'jars', 'scratch.jsonl')), 'still no file')
})

t.test('readOnly with an autopilot is refused at start-up', async (t) => {
  const { runCli } = await import('../helpers/proxy.js')
  const dataDir = tempDir()
  const file = join(dataDir, 'c.json')
  writeFileSync(file, JSON.stringify({ profiles: { ro: { readOnly: true, autopilot: [{ match: 'x.example', login: { preset: 'json-token', username: 'a', password: { value: 'b' } } }] } } }))
  const r = runCli(['--data-dir', dataDir, '--port', '0', '--config', file])
  cleanup(dataDir)
  t.not(r.status, 0)
  t.match(r.stderr, /profiles\.ro: readOnly and autopilot do not go together/)
})

t.test('session.json round trip; a bad file changes nothing', async (t) => {
  const proxy = await startProxy({ config: { profiles: { dave: { hosts: [{ match: '127.0.0.1', headers: { 'X-Tenant': 'acme', Authorization: 'Bearer s3cret' } }] } } } })
  t.teardown(async () => { await proxy.stop(); cleanup(proxy.dataDir) })
  await viaProxy(proxy.port, `${upstream.origin}/?set=${encodeURIComponent('a=1; Path=/; HttpOnly')}&set=${encodeURIComponent('b=2; Max-Age=3600')}`, { headers: asProfile('dave') })
  const got = await admin(proxy, 'GET', '/_session/profiles/dave/session.json')
  t.equal(got.status, 200)
  t.equal(got.json.cookies.length, 2)
  t.same(got.json.hosts, [{ match: '127.0.0.1', headers: { 'X-Tenant': 'acme', Authorization: '[redacted]' } }], 'headers summarised, secrets redacted')
  t.notMatch(JSON.stringify(got.json), /s3cret/)

  const edited = structuredClone(got.json)
  edited.cookies[0].value = 'edited'
  edited.cookies.push({ name: 'c', value: '3', domain: '.127.0.0.1', path: '/sub' })
  t.equal((await admin(proxy, 'PUT', '/_session/profiles/dave/session.json', edited)).status, 200)
  const back = await admin(proxy, 'GET', '/_session/profiles/dave/session.json')
  t.same(back.json.cookies.slice(0, 2).map((c: Record<string, unknown>) => ({ ...c })), edited.cookies.slice(0, 2), 'the edited cookies come back as written')
  t.match(back.json.cookies[2], { name: 'c', value: '3', domain: '127.0.0.1', path: '/sub', hostOnly: false })
  t.equal(JSON.parse((await viaProxy(proxy.port, `${upstream.origin}/`, { headers: asProfile('dave') })).body).cookie, 'a=edited; b=2', 'the proxy sends them')

  const bad = structuredClone(back.json)
  bad.cookies[2].value = 'bad;value'
  const refused = await admin(proxy, 'PUT', '/_session/profiles/dave/session.json', bad)
  t.equal(refused.status, 400)
  t.equal(refused.json.error, 'SP_COOKIE_INVALID')
  t.match(refused.json.message, /cookies\[2\]/)
  t.same((await admin(proxy, 'GET', '/_session/profiles/dave/session.json')).json.cookies, back.json.cookies, 'nothing changed')
})

t.test('the profile list counts loaded jars only: unloaded ones are not read', async (t) => {
  const dataDir = tempDir()
  mkdirSync(join(dataDir, 'jars'), { recursive: true })
  // Not valid JSON: a list that read it would set it aside as damaged.
  writeFileSync(join(dataDir, 'jars', 'cold.jsonl'), 'not json\n', { mode: 0o600 })
  const proxy = await startProxy({ dataDir })
  t.teardown(async () => { await proxy.stop(); cleanup(dataDir) })
  await viaProxy(proxy.port, `${upstream.origin}/?set=w%3D1`, { headers: asProfile('warm') })
  const list = (await admin(proxy, 'GET', '/_session/profiles')).json.profiles
  t.same(list.find((p: { name: string }) => p.name === 'cold'), { name: 'cold', cookies: null, loaded: false, declared: false })
  t.same(list.find((p: { name: string }) => p.name === 'warm'), { name: 'warm', cookies: 1, loaded: true, declared: false })
  t.equal((await admin(proxy, 'GET', '/_session/health')).json.status, 'ok', 'the damaged file was never loaded')
})
