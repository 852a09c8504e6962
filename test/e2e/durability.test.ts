/**
 * Durability against a failing disk, a second process and hostile journal
 * files, with real proxy processes and curl.
 *
 * Tests run as root here, where permissions do not stop writes. The failing
 * disk is made two ways that work as root and as a normal user alike:
 * `prlimit --fsize` on the running proxy (every write past the limit fails
 * with EFBIG, also on descriptors already open, like a full disk), and a
 * jars directory made read-only (chmod) with the proxy running as root without CAP_DAC_OVERRIDE
 * when the test is root.
 */
import { spawnSync } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { adminGet, cleanup, curl, echoCookies, run, startProxy, startUpstream, tempDir, type ProxyProcess } from '../helpers/proxy.js'

interface Health { status: string, profilesLoaded: number, problems: Array<Record<string, unknown>> }

const health = async (proxy: ProxyProcess): Promise<Health> => (await adminGet(proxy, '/_session/health')).json as Health

const waitFor = async (cond: () => Promise<boolean>, what: string, ms = 20_000): Promise<void> => {
  const until = Date.now() + ms
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

const sentCookie = async (proxy: ProxyProcess, url: string, profile = 'default'): Promise<string | null> =>
  (JSON.parse((await curl(['-x', `http://${profile}@127.0.0.1:${proxy.port}`, url])).stdout) as { cookie: string | null }).cookie

const hasPrlimit = spawnSync('prlimit', ['--version']).status === 0

t.test('a disk that refuses writes is loud, and the jar catches up once it recovers', { skip: hasPrlimit ? false : 'prlimit (util-linux) is not installed' }, async (t) => {
  const up = await startUpstream(echoCookies())
  const dataDir = tempDir()
  t.teardown(async () => { await up.close(); cleanup(dataDir) })
  let proxy = await startProxy({ dataDir })
  t.teardown(async () => { await proxy.stop() })
  t.equal((await curl(['-x', proxy.url, `${up.origin}/?set=before%3D1`])).status, 200)
  t.equal((await health(proxy)).status, 'ok')

  // From now on every write of the proxy past one byte fails, open descriptors included.
  const pid = String(proxy.proc.pid)
  t.equal((await run('prlimit', ['--pid', pid, '--fsize=1:'])).code, 0)
  const during = await curl(['-x', proxy.url, '-D', '-', `${up.origin}/?set=during%3D2`])
  t.equal(during.status, 200, 'the response is still delivered')
  const degraded = await health(proxy)
  t.equal(degraded.status, 'degraded', 'health says degraded')
  t.match(degraded.problems, [{ kind: 'persist', profile: 'default', code: 'EFBIG', file: join(dataDir, 'jars', 'default.jsonl') }], 'with the reason')
  const metrics = (await adminGet(proxy, '/_session/metrics')).body
  t.match(metrics, /session_proxy_persist_failures_total [1-9]/, 'a failure counter')
  t.match(metrics, /session_proxy_persist_failing_profiles 1/, 'a gauge of failing profiles')
  t.ok(proxy.output.some((l) => l.includes('"level":50') && l.includes('could not write cookie jar')), 'an error log line')
  // Retries keep failing while the disk does.
  await new Promise((resolve) => setTimeout(resolve, 800))
  t.equal((await health(proxy)).status, 'degraded')

  // The disk recovers: the retry rewrites the whole jar, the failed change included.
  t.equal((await run('prlimit', ['--pid', pid, '--fsize=unlimited:'])).code, 0)
  await waitFor(async () => (await health(proxy)).status === 'ok', 'health ok again')
  t.equal((await health(proxy)).problems.length, 0)
  t.match(readFileSync(join(dataDir, 'jars', 'default.jsonl'), 'utf8'), '"key":"during"')
  await proxy.kill9()
  proxy = await startProxy({ dataDir })
  t.equal(await sentCookie(proxy, `${up.origin}/`), 'before=1; during=2', 'after kill -9 and restart the change made during the failure is there')
})

t.test('a read-only jars directory (chmod) is loud until it is writable again', async (t) => {
  const up = await startUpstream(echoCookies())
  const dataDir = tempDir()
  t.teardown(async () => { await up.close(); cleanup(dataDir) })
  // Root ignores permissions through CAP_DAC_OVERRIDE: run the proxy as
  // root without it (dropped from the bounding set before exec), so a
  // read-only directory refuses it as it would anyone. Unlike switching to
  // another user, this needs no access to the checkout for that user.
  const asRoot = process.getuid?.() === 0
  const wrap = asRoot ? ['setpriv', '--bounding-set=-dac_override,-dac_read_search', '--'] : undefined
  const proxy = await startProxy({ dataDir, wrap })
  t.teardown(async () => { await proxy.stop() })
  const jars = join(dataDir, 'jars')
  chmodSync(jars, 0o500)
  t.equal((await curl(['-x', `http://ro@127.0.0.1:${proxy.port}`, `${up.origin}/?set=ro%3D1`])).status, 200)
  const degraded = await health(proxy)
  t.equal(degraded.status, 'degraded')
  t.match(degraded.problems, [{ kind: 'persist', profile: 'ro', code: 'EACCES' }])
  chmodSync(jars, 0o700)
  await waitFor(async () => (await health(proxy)).status === 'ok', 'health ok again')
  t.match(readFileSync(join(jars, 'ro.jsonl'), 'utf8'), '"key":"ro"')
})

t.test('a second proxy on the same data dir refuses to start, naming the holder; after kill -9 the lock is taken over', async (t) => {
  const up = await startUpstream(echoCookies())
  const dataDir = tempDir()
  t.teardown(async () => { await up.close(); cleanup(dataDir) })
  const first = await startProxy({ dataDir })
  await curl(['-x', first.url, `${up.origin}/?set=first%3D1`])
  let refused: Error | null = null
  try {
    const second = await startProxy({ dataDir })
    await second.stop()
  } catch (err) {
    refused = err as Error
  }
  t.ok(refused !== null, 'the second process did not start')
  t.match(refused?.message, new RegExp(`exited with 2 before listening[\\s\\S]*in use by another session-proxy \\(pid ${first.proc.pid} `), 'the message names the holder pid')
  t.equal(await sentCookie(first, `${up.origin}/`), 'first=1', 'the first one goes on serving')

  await first.kill9()
  t.ok(existsSync(join(dataDir, 'session-proxy.lock')), 'kill -9 leaves the lock behind')
  const after = await startProxy({ dataDir })
  t.teardown(async () => { await after.stop() })
  t.equal(await sentCookie(after, `${up.origin}/`), 'first=1', 'the stale lock was taken over, nothing lost')
  t.equal(await after.stop(), 0)
  t.notOk(existsSync(join(dataDir, 'session-proxy.lock')), 'a clean stop releases the lock')
})

t.test('journal loading: a BOM keeps the first record, an unsendable record is rejected and reported, the profile keeps working', async (t) => {
  const up = await startUpstream(echoCookies())
  const dataDir = tempDir()
  t.teardown(async () => { await up.close(); cleanup(dataDir) })
  mkdirSync(join(dataDir, 'jars'), { recursive: true, mode: 0o700 })
  const record = (key: string, value: string): string => JSON.stringify({ op: 'set', cookie: { key, value, domain: '127.0.0.1', path: '/', hostOnly: true, creation: new Date().toISOString() } })
  writeFileSync(join(dataDir, 'jars', 'default.jsonl'), '\uFEFF' + [record('first', '1'), record('evil', 'x\r\nX-Injected: 1'), record('euro', '€'), record('last', '3')].join('\n') + '\n', { mode: 0o600 })
  const proxy = await startProxy({ dataDir })
  t.teardown(async () => { await proxy.stop() })
  const res = await curl(['-x', proxy.url, `${up.origin}/`])
  t.equal(res.status, 200, 'not a 502')
  t.equal((JSON.parse(res.stdout) as { cookie: string }).cookie, 'first=1; last=3')
  const h = await health(proxy)
  t.equal(h.status, 'degraded')
  t.match(h.problems, [{ profile: 'default', badLines: [2, 3] }])
  t.ok(existsSync(String(h.problems[0]!.keptAs)), 'the original is kept aside')
})

t.test('loaded profiles are bounded; unloaded ones come back transparently with their cookies', async (t) => {
  const up = await startUpstream(echoCookies())
  const dataDir = tempDir()
  t.teardown(async () => { await up.close(); cleanup(dataDir) })
  const proxy = await startProxy({ dataDir, config: { limits: { maxProfilesLoaded: 3 } } })
  t.teardown(async () => { await proxy.stop() })
  for (let n = 0; n < 12; n++) t.equal((await curl(['-x', `http://u${n}@127.0.0.1:${proxy.port}`, `${up.origin}/?set=sid%3Du${n}`])).status, 200)
  t.ok((await health(proxy)).profilesLoaded <= 3, 'at most 3 loaded')
  for (let n = 0; n < 12; n++) t.equal(await sentCookie(proxy, `${up.origin}/`, `u${n}`), `sid=u${n}`, `u${n} still has its cookie`)
  t.ok((await health(proxy)).profilesLoaded <= 3)
})
