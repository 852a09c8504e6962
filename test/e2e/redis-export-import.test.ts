/**
 * `session-proxy export` / `import` move every profile between stores
 * losslessly (every attribute, creation order): files to Redis (a running
 * replica takes the cookies at once), Redis back to files; a bad file
 * changes nothing.
 */
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { CLI, cleanup, echoCookies, run, startProxy, startUpstream, tempDir, viaProxy } from '../helpers/proxy.js'
import { hasRedis, startRedis } from '../helpers/redis.js'

interface Doc { format: string, profiles: Array<{ name: string, cookies: Array<Record<string, unknown>> }> }

async function cli (...args: string[]): Promise<{ code: number | null, stdout: string, stderr: string }> {
  const r = await run(process.execPath, [CLI, ...args])
  return { code: r.code, stdout: r.stdout.toString('utf8'), stderr: r.stderr }
}

if (!hasRedis()) {
  t.fail('redis-server is not installed: .ci/run installs it (apt-get install redis-server)')
} else {
  t.test('file -> Redis -> file round trip is lossless', async (t) => {
    const work = tempDir('sp-transfer-')
    const redis = await startRedis()
    const upstream = await startUpstream(echoCookies())
    const source = await startProxy()
    t.teardown(async () => {
      await redis.stop()
      await upstream.close()
      cleanup(work, redis.dir, source.dataDir)
    })
    // Cookies with every kind of attribute, in two profiles, created in a known order.
    const put = async (profile: string, name: string, body: Record<string, unknown>): Promise<void> => {
      const r = await fetch(`${source.url}/_session/profiles/${profile}/cookies/${name}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
      t.equal(r.status, 200, `PUT ${profile}/${name}: ${await r.text()}`)
    }
    await viaProxy(source.port, `${upstream.origin}/x?set=${encodeURIComponent('first=1; Path=/; HttpOnly; SameSite=Strict')}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
    await viaProxy(source.port, `${upstream.origin}/x?set=${encodeURIComponent('second=2; Path=/sub; Max-Age=3600; SameSite=Lax')}`)
    await new Promise((resolve) => setTimeout(resolve, 5))
    await put('default', 'third', { value: 'v3', domain: 'example.com', path: '/', secure: true, httpOnly: true, expires: '2099-01-01T00:00:00.000Z', sameSite: 'none' })
    await put('alice', 'token', { value: 'a b=c', domain: 'api.example.org', path: '/v1' })
    t.equal(await source.stop(), 0)

    const fromFiles = join(work, 'from-files.json')
    const e1 = await cli('export', '--data-dir', source.dataDir, '--out', fromFiles)
    t.equal(e1.code, 0, e1.stderr)
    const doc1 = JSON.parse(readFileSync(fromFiles, 'utf8')) as Doc
    t.same(doc1.profiles.map((p) => p.name), ['alice', 'default'])
    t.same(doc1.profiles[1]!.cookies.map((c) => c.key), ['first', 'second', 'third'], 'creation order')
    t.match(doc1.profiles[1]!.cookies[0], { key: 'first', httpOnly: true, sameSite: 'strict', hostOnly: true })
    t.match(doc1.profiles[1]!.cookies[1], { key: 'second', maxAge: 3600, path: '/sub' })
    t.match(doc1.profiles[1]!.cookies[2], { key: 'third', secure: true, domain: 'example.com', expires: '2099-01-01T00:00:00.000Z' })

    // A replica already running on that Redis takes the import at once.
    const replica = await startProxy({ args: ['--store', redis.url] })
    t.teardown(async () => { await replica.stop(); cleanup(replica.dataDir) })
    const imported = await cli('import', fromFiles, '--store', redis.url)
    t.equal(imported.code, 0, imported.stderr)
    t.match(imported.stdout, /imported 2 profiles \(4 cookies\)/)
    const seen = JSON.parse((await viaProxy(replica.port, `${upstream.origin}/sub/page`)).body) as { cookie: string }
    t.equal(seen.cookie, 'second=2; first=1', 'the running replica sends the imported cookies')

    const fromRedis = join(work, 'from-redis.json')
    t.equal((await cli('export', '--store', redis.url, '--out', fromRedis)).code, 0)
    const doc2 = JSON.parse(readFileSync(fromRedis, 'utf8')) as Doc
    t.same(doc2.profiles, doc1.profiles, 'Redis holds exactly what the files held')

    const single = join(work, 'single')
    t.equal((await cli('import', fromRedis, '--data-dir', single)).code, 0)
    const back = await cli('export', '--data-dir', single)
    t.same((JSON.parse(back.stdout) as Doc).profiles, doc1.profiles, 'and back into files, unchanged')

    // One bad cookie: nothing is written.
    const bad = structuredClone(doc1)
    bad.profiles[0]!.cookies[0]!.value = 'line\r\nbreak'
    bad.profiles[1]!.cookies[0]!.value = 'changed'
    const badFile = join(work, 'bad.json')
    writeFileSync(badFile, JSON.stringify(bad))
    const refused = await cli('import', badFile, '--store', redis.url)
    t.equal(refused.code, 2)
    t.match(refused.stderr, /profiles\[0\]\.cookies\[0\].*nothing was imported/)
    const after = JSON.parse((await cli('export', '--store', redis.url)).stdout) as Doc
    t.same(after.profiles, doc1.profiles, 'Redis unchanged')
    t.equal((await cli('import', join(work, 'missing.json'), '--store', redis.url)).code, 2)
  })
}
