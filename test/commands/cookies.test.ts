/**
 * `session-proxy cookies PROFILE`: list, --set, --delete, --import, --export
 * against the real proxy through its admin API.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { CLI, cleanup, echoCookies, run, startProxy, startUpstream, tempDir, viaProxy, type ProxyProcess, type Upstream } from '../helpers/proxy.js'
import { cookieTable } from '../../src/commands/cookies.js'

let proxy: ProxyProcess
let upstream: Upstream
const work = tempDir('sp-cookies-cmd-')
t.before(async () => {
  upstream = await startUpstream(echoCookies())
  proxy = await startProxy()
})
t.teardown(async () => {
  await proxy.stop()
  await upstream.close()
  cleanup(proxy.dataDir, work)
})

async function cookies (...args: string[]): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const r = await run(process.execPath, [CLI, 'cookies', ...args, '--host', '127.0.0.1', '--port', String(proxy.port)], { env: { SESSION_PROXY_CONFIG: '' } })
  return { code: r.code, stdout: r.stdout.toString('utf8'), stderr: r.stderr }
}

const sentAs = async (profile: string): Promise<string | null> =>
  (JSON.parse((await viaProxy(proxy.port, `${upstream.origin}/`, { headers: { 'x-session-profile': profile } })).body) as { cookie: string | null }).cookie

t.test('--set, list, --delete', async (t) => {
  t.equal((await cookies('erin', '--set', 'x=1')).code, 2, '--set needs --domain')
  await fetch(`${proxy.url}/_session/profiles`, { method: 'POST', headers: { 'x-session-proxy-admin': '1', 'content-type': 'application/json' }, body: '{"name":"erin"}' })
  const set = await cookies('erin', '--set', 'sid=a=b', '--domain', '127.0.0.1', '--path', '/', '--http-only')
  t.equal(set.code, 0, set.stderr)
  t.match(set.stdout, /sid\s+a=b\s+127\.0\.0\.1\s+\/\s+session\s+HttpOnly/)
  t.equal(await sentAs('erin'), 'sid=a=b', 'the proxy sends it')
  const list = await cookies('erin')
  t.match(list.stdout, /^NAME\s+VALUE\s+DOMAIN\s+PATH\s+EXPIRES\s+FLAGS\n/)
  t.match(list.stdout, /sid\s+a=b/)
  const bad = await cookies('erin', '--set', 'sid=a;b', '--domain', '127.0.0.1')
  t.equal(bad.code, 1)
  t.match(bad.stderr, /Cookie value cannot be sent/)
  const del = await cookies('erin', '--delete', 'sid')
  t.equal(del.code, 0)
  t.match(del.stdout, /deleted 1 cookie named sid/)
  t.equal((await cookies('erin', '--delete', 'sid')).code, 1, 'nothing to delete')
  t.equal(await sentAs('erin'), null)
  t.match((await cookies('erin')).stdout, /\(no cookies\)/)
  t.equal((await cookies('nobody-here')).code, 1, 'an unknown profile')
  t.equal((await cookies('erin', '--delete', 'a', '--import', 'f')).code, 2, 'one action at a time')
})

t.test('--export and --import, cookies.txt and session.json', async (t) => {
  await viaProxy(proxy.port, `${upstream.origin}/?set=k%3D1&set=${encodeURIComponent('m=2; Max-Age=3600')}`, { headers: { 'x-session-profile': 'frank' } })
  const txt = join(work, 'frank.txt')
  const json = join(work, 'frank.json')
  t.equal((await cookies('frank', '--export', txt)).code, 0)
  t.match(readFileSync(txt, 'utf8'), /\tk\t1\n/)
  t.equal((await cookies('frank', '--export', json)).code, 0)
  const session = JSON.parse(readFileSync(json, 'utf8')) as { cookies: Array<{ name: string, value: string }> }
  t.equal(session.cookies.length, 2)
  t.match((await cookies('frank', '--export', '-')).stdout, /# Netscape HTTP Cookie File/)

  session.cookies[0]!.value = 'edited'
  writeFileSync(json, JSON.stringify(session))
  const imported = await cookies('grace', '--import', json)
  t.equal(imported.code, 0, imported.stderr)
  t.match(imported.stdout, /imported 2 cookies/)
  t.equal(await sentAs('grace'), 'k=edited; m=2')
  const fromTxt = await cookies('heidi', '--import', txt)
  t.equal(fromTxt.code, 0, fromTxt.stderr)
  t.equal(await sentAs('heidi'), 'k=1; m=2')
})

t.test('table formatting', async (t) => {
  const long = 'v'.repeat(100)
  const out = cookieTable([{ name: 'n', value: long, domain: 'd', path: '/', expires: null, secure: true, httpOnly: false, sameSite: 'lax', hostOnly: false }])
  t.match(out, /v{39}…/)
  t.match(out, /Secure,SameSite=lax,subdomains/)
  t.equal(cookieTable([]), '(no cookies)\n')
})

t.test('help and usage', async (t) => {
  t.match((await cookies('--help')).stdout, /Usage: session-proxy cookies PROFILE/)
  t.equal((await cookies()).code, 2)
  t.equal((await cookies('x', '--bogus')).code, 2)
})
