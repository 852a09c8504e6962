import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { adminGet, cleanup, curl, echoCookies, startProxy, startUpstream, tempDir } from '../helpers/proxy.js'

t.test('cookies.txt round-trips with curl -b/-c files', async (t) => {
  const up = await startUpstream(echoCookies())
  const proxy = await startProxy({ args: ['--connect-to', `:80:127.0.0.1:${up.port}`] })
  const dir = tempDir()
  t.teardown(async () => { await proxy.stop(); await up.close(); cleanup(proxy.dataDir, dir) })

  // curl writes a jar of its own (no proxy involved) ...
  const curlJar = join(dir, 'curl-jar.txt')
  await curl(['-c', curlJar, '--connect-to', `app.example.test:80:127.0.0.1:${up.port}`,
    'http://app.example.test/?set=JSESSIONID%3Dfrom-curl%3B%20Path%3D%2F%3B%20HttpOnly&set=wide%3D1%3B%20Domain%3Dexample.test%3B%20Path%3D%2F%3B%20Max-Age%3D3600&set=scoped%3D2%3B%20Path%3D%2Fapp'])
  // ... which the proxy imports ...
  const put = await curl(['-X', 'PUT', '--data-binary', `@${curlJar}`, `${proxy.url}/_session/profiles/imported/cookies.txt`])
  t.equal(put.status, 200, put.stdout)
  t.match(JSON.parse(put.stdout), { profile: 'imported', imported: 3 })
  // ... and sends, with the attributes curl recorded.
  const get = async (url: string): Promise<string | null> => (JSON.parse((await curl(['-x', `http://imported@127.0.0.1:${proxy.port}`, url])).stdout) as { cookie: string | null }).cookie
  const sent = (await get('http://app.example.test/app/x'))?.split('; ') ?? []
  t.equal(sent[0], 'scoped=2', 'the longer path comes first')
  t.same(sent.slice(1).sort(), ['JSESSIONID=from-curl', 'wide=1'])
  t.equal(await get('http://other.example.test/'), 'wide=1', 'the domain cookie reaches other hosts of the domain, the host-only ones do not')
  t.equal(await get('http://example.org/'), null, 'nothing goes to another domain')
  const listed = (await adminGet(proxy, '/_session/profiles/imported/cookies')).json as { cookies: Array<Record<string, unknown>> }
  t.match(listed.cookies.find((c) => c.name === 'JSESSIONID'), { httpOnly: true, hostOnly: true, expires: null })
  t.match(listed.cookies.find((c) => c.name === 'wide'), { hostOnly: false, domain: 'example.test' })

  // The proxy's export is a file curl reads with -b.
  await curl(['-x', proxy.url, 'http://app.example.test/?set=fromproxy%3Dyes%3B%20Path%3D%2F'])
  const exported = await curl([`${proxy.url}/_session/profiles/default/cookies.txt`])
  t.equal(exported.status, 200)
  const exportFile = join(dir, 'exported.txt')
  writeFileSync(exportFile, exported.stdout)
  const direct = await curl(['-b', exportFile, '--connect-to', `app.example.test:80:127.0.0.1:${up.port}`, 'http://app.example.test/'])
  t.equal(JSON.parse(direct.stdout).cookie, 'fromproxy=yes', 'curl -b sends what the proxy exported')
  t.match(readFileSync(exportFile, 'utf8'), /^# Netscape HTTP Cookie File/)

  // Export -> import -> export is stable.
  await curl(['-X', 'PUT', '--data-binary', `@${exportFile}`, `${proxy.url}/_session/profiles/copy/cookies.txt`])
  const again = await curl([`${proxy.url}/_session/profiles/copy/cookies.txt`])
  t.equal(again.stdout, exported.stdout, 'a second export is identical')
})

t.test('a bad cookies.txt is refused whole, naming the line, and the jar is untouched', async (t) => {
  const up = await startUpstream(echoCookies())
  const proxy = await startProxy()
  t.teardown(async () => { await proxy.stop(); await up.close(); cleanup(proxy.dataDir) })
  await curl(['-x', proxy.url, `${up.origin}/?set=keep%3D1`])
  const bad = '# Netscape HTTP Cookie File\n127.0.0.1\tFALSE\t/\tFALSE\t0\tok\t1\n127.0.0.1\tMAYBE\t/\tFALSE\t0\tbad\t2\nnot a cookie line\n'
  const res = await curl(['-X', 'PUT', '--data-binary', '@-', `${proxy.url}/_session/profiles/default/cookies.txt`], bad)
  t.equal(res.status, 400)
  t.match(JSON.parse(res.stdout), { error: 'SP_COOKIES_TXT_INVALID', message: /line 3: include-subdomains must be TRUE or FALSE.*\n.*line 4: expected 7 tab-separated fields/s })
  t.equal(JSON.parse((await curl(['-x', proxy.url, `${up.origin}/`])).stdout).cookie, 'keep=1', 'nothing was imported or lost, and the proxy keeps serving')
  const badName = await curl(['-X', 'PUT', '--data-binary', 'x', `${proxy.url}/_session/profiles/bad%20name/cookies.txt`])
  t.equal(badName.status, 400)
  t.match(JSON.parse(badName.stdout), { error: 'SP_PROFILE_INVALID', message: /invalid profile name "bad name"/ })
  const missing = await curl([`${proxy.url}/_session/profiles/nobody/cookies.txt`])
  t.equal(missing.status, 404)
  t.match(JSON.parse(missing.stdout), { error: 'SP_PROFILE_NOT_FOUND' })
})

t.test('DELETE empties a jar', async (t) => {
  const up = await startUpstream(echoCookies())
  const proxy = await startProxy()
  t.teardown(async () => { await proxy.stop(); await up.close(); cleanup(proxy.dataDir) })
  await curl(['-x', proxy.url, `${up.origin}/?set=a%3D1&set=b%3D2`])
  const del = await curl(['-X', 'DELETE', `${proxy.url}/_session/profiles/default/cookies`])
  t.same(JSON.parse(del.stdout), { profile: 'default', deleted: 2 })
  t.equal(JSON.parse((await curl(['-x', proxy.url, `${up.origin}/`])).stdout).cookie, null)
  await proxy.stop()
  const again = await startProxy({ dataDir: proxy.dataDir })
  t.teardown(async () => { await again.stop() })
  t.equal(JSON.parse((await curl(['-x', again.url, `${up.origin}/`])).stdout).cookie, null, 'the deletion survives a restart')
})
