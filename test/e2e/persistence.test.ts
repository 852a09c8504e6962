import { readdirSync, readFileSync, statSync, writeFileSync, appendFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { adminGet, cleanup, curl, echoCookies, startProxy, startUpstream, tempDir, viaProxy } from '../helpers/proxy.js'

t.test('a restart keeps the session, session cookies included', async (t) => {
  const up = await startUpstream(echoCookies())
  const dataDir = tempDir()
  t.teardown(async () => { await up.close(); cleanup(dataDir) })
  let proxy = await startProxy({ dataDir })
  await curl(['-x', proxy.url, `${up.origin}/?set=JSESSIONID%3Dsess1%3B%20Path%3D%2F&set=remember%3Dyes%3B%20Max-Age%3D3600`])
  await curl(['-x', `http://alice@127.0.0.1:${proxy.port}`, `${up.origin}/?set=JSESSIONID%3Dalice1`])
  t.equal(await proxy.stop(), 0, 'SIGTERM stops cleanly')

  proxy = await startProxy({ dataDir })
  t.teardown(async () => { await proxy.stop() })
  t.equal(JSON.parse((await curl(['-x', proxy.url, `${up.origin}/`])).stdout).cookie, 'JSESSIONID=sess1; remember=yes')
  t.equal(JSON.parse((await curl(['-x', `http://alice@127.0.0.1:${proxy.port}`, `${up.origin}/`])).stdout).cookie, 'JSESSIONID=alice1')
})

t.test('data files are readable by the owner only', async (t) => {
  const up = await startUpstream(echoCookies())
  const proxy = await startProxy()
  t.teardown(async () => { await proxy.stop(); await up.close(); cleanup(proxy.dataDir) })
  await curl(['-x', proxy.url, `${up.origin}/?set=a%3D1`])
  const jars = join(proxy.dataDir, 'jars')
  t.equal(statSync(jars).mode & 0o777, 0o700, 'jar directory is 0700')
  t.equal(statSync(join(jars, 'default.jsonl')).mode & 0o777, 0o600, 'jar file is 0600')
})

t.test('kill -9 at any moment loses no cookie change of a delivered response', async (t) => {
  const up = await startUpstream(echoCookies())
  const dataDir = tempDir()
  t.teardown(async () => { await up.close(); cleanup(dataDir) })
  const delivered = new Set<string>()
  // Every cookie must stay, so the jar caps (180 per domain) are raised.
  const config = { jar: { maxCookiesPerDomain: 100000, maxCookiesPerProfile: 100000 } }
  for (let round = 0; round < 5; round++) {
    const proxy = await startProxy({ dataDir, logLevel: 'warn', config })
    let stop = false
    let thisRound = 0
    // Eight clients each set a new cookie per request until the kill.
    const clients = Array.from({ length: 8 }, async (_, c) => {
      for (let i = 0; !stop; i++) {
        const name = `r${round}c${c}n${i}`
        try {
          const res = await viaProxy(proxy.port, `${up.origin}/?set=${name}%3D${i}`)
          if (res.status === 200) { delivered.add(name); thisRound++ }
        } catch {
          return
        }
      }
    })
    // The kill comes once enough responses were delivered in this round (a
    // fixed delay delivered almost none on a loaded machine), then after a
    // varying moment, so it lands anywhere in a write.
    const deadline = Date.now() + 20_000
    while (thisRound < 30 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5))
    await new Promise((resolve) => setTimeout(resolve, round * 23))
    await proxy.kill9()
    stop = true
    await Promise.all(clients)
  }
  t.ok(delivered.size > 100, `many responses were delivered before the kills (${delivered.size})`)
  const proxy = await startProxy({ dataDir, config })
  t.teardown(async () => { await proxy.stop() })
  const cookies = await adminGet(proxy, '/_session/profiles/default/cookies')
  const stored = new Set((cookies.json as { cookies: Array<{ name: string }> }).cookies.map((c) => c.name))
  const lost = [...delivered].filter((n) => !stored.has(n))
  t.same(lost, [], 'every cookie whose response reached the client is still there')
})

t.test('a damaged jar file never stops the start: valid records load, the rest is kept aside', async (t) => {
  const up = await startUpstream(echoCookies())
  const dataDir = tempDir()
  t.teardown(async () => { await up.close(); cleanup(dataDir) })
  let proxy = await startProxy({ dataDir })
  await curl(['-x', proxy.url, `${up.origin}/?set=keep%3D1`])
  await curl(['-x', proxy.url, `${up.origin}/?set=also%3D2`])
  await proxy.stop()
  const file = join(dataDir, 'jars', 'default.jsonl')
  const original = readFileSync(file, 'utf8')
  // A torn last write and garbage in the middle.
  writeFileSync(file, original.split('\n')[0] + '\n{"op":"set","cook\u0000ie":\n' + original.split('\n')[1] + '\n')
  appendFileSync(file, '{"op":"set","cookie":{"key":"torn"')
  writeFileSync(join(dataDir, 'jars', 'other.jsonl'), Buffer.from([0xff, 0xfe, 0x00, 0x01, 0x0a]))

  proxy = await startProxy({ dataDir })
  t.teardown(async () => { await proxy.stop() })
  t.equal(JSON.parse((await curl(['-x', proxy.url, `${up.origin}/`])).stdout).cookie, 'keep=1; also=2', 'the valid records were loaded')
  const health = await adminGet(proxy, '/_session/health')
  t.equal(health.status, 200)
  t.match(health.json, { status: 'degraded', problems: [{ profile: 'default', badLines: [2, 4] }] })
  const aside = readdirSync(join(dataDir, 'jars')).filter((f) => f.startsWith('default.jsonl.corrupt-'))
  t.equal(aside.length, 1, 'the damaged file was kept aside')
  t.match(readFileSync(join(dataDir, 'jars', aside[0]!), 'utf8'), /"key":"torn"/, 'with every byte of it')
  t.equal(statSync(join(dataDir, 'jars', aside[0]!)).mode & 0o777, 0o600)
  await adminGet(proxy, '/_session/profiles/other/cookies')
  t.match((await adminGet(proxy, '/_session/health')).json, { problems: [{ profile: 'default' }, { profile: 'other', badLines: [1] }] })
  await proxy.stop()
  // The rewritten file is clean: the next start reports nothing.
  proxy = await startProxy({ dataDir })
  t.match((await adminGet(proxy, '/_session/health')).json, { status: 'ok', problems: [] })
  t.equal(JSON.parse((await curl(['-x', proxy.url, `${up.origin}/`])).stdout).cookie, 'keep=1; also=2')
})
