import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import pino from 'pino'
import t, { type Test } from 'tap'
import { loadConfig } from '../../src/config/load.js'
import { CookieJarStore } from '../../src/session/jar-files.js'
import { LOCK_FILE } from '../../src/session/data-dir-lock.js'
import { ProfileRegistry, type PersistProblem, type Profile } from '../../src/session/profiles.js'

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

const URL_A = 'http://example.test/'

interface Setup { registry: ProfileRegistry, dataDir: string, logs: Array<Record<string, unknown>> }

function setup (t: Test, flags: Record<string, unknown> = {}): Setup {
  const dataDir = mkdtempSync(join(tmpdir(), 'sp-profiles-'))
  const { config } = loadConfig({ env: {}, flags: { dataDir, ...flags } })
  const files = new CookieJarStore(config.dataDir!)
  files.init()
  const logs: Array<Record<string, unknown>> = []
  const log = pino({ level: 'info' }, { write: (line: string) => { logs.push(JSON.parse(line) as Record<string, unknown>) } })
  const registry = new ProfileRegistry(config, files, log)
  t.teardown(async () => { await registry.close(); rmSync(dataDir, { recursive: true, force: true }) })
  return { registry, dataDir, logs }
}

async function setCookie (t: Test, p: Profile, line: string): Promise<void> {
  t.ok(p.capture([line], URL_A, 1), `${p.name}: ${line} changed the jar`)
  await p.pendingWrite
}

const cookieOf = (p: Profile): string => p.jar.cookieHeader(URL_A, URL_A)

const collect = async (): Promise<void> => {
  // WeakRef targets stay alive until the current job ends.
  for (let i = 0; i < 3; i++) {
    await new Promise((resolve) => setImmediate(resolve))
    gc()
  }
}

const waitFor = async (cond: () => boolean, what: string): Promise<void> => {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((resolve) => setTimeout(resolve, 10))
  if (!cond()) throw new Error(`timed out waiting for ${what}`)
}

t.test('loaded profiles stay within maxProfilesLoaded; unloaded ones come back from disk with their cookies', async (t) => {
  const { registry, dataDir } = setup(t, { limits: { maxProfilesLoaded: 5, profileIdleUnloadMs: 0 } })
  for (let n = 0; n < 30; n++) await setCookie(t, registry.get(`p${n}`), `sid=v${n}`)
  t.ok([...registry.loaded()].length <= 5, `at most 5 loaded (${[...registry.loaded()].length})`)
  await collect()
  const readBack = new WeakRef(registry.get('p0'))
  t.equal(cookieOf(readBack.deref()!), 'sid=v0', 'read back from disk')
  t.ok([...registry.loaded()].length <= 5)
  // The journal handles of unloaded profiles are closed: the files are complete.
  for (let n = 0; n < 30; n++) t.match(readFileSync(join(dataDir, 'jars', `p${n}.jsonl`), 'utf8'), `"value":"v${n}"`)
})

t.test('maxCookiesLoaded bounds the cookies of loaded profiles together; the count follows changes, unloads and reloads', async (t) => {
  const { registry } = setup(t, { limits: { maxProfilesLoaded: 1000, maxCookiesLoaded: 20, profileIdleUnloadMs: 0 } })
  for (let n = 0; n < 10; n++) {
    const p = registry.get(`c${n}`)
    for (let i = 0; i < 4; i++) await setCookie(t, p, `k${i}=v${n}`)
  }
  const loaded = (): Profile[] => [...registry.loaded()]
  const held = (): number => loaded().reduce((sum, p) => sum + p.jar.size, 0)
  t.equal(registry.cookiesLoaded, held(), 'the running count is the sum of the loaded jars')
  t.ok(held() <= 20, `at most 20 cookies loaded (${held()})`)
  t.ok(loaded().length < 10, 'profiles were unloaded to stay within the cookie bound')
  t.notOk(loaded().some((p) => p.name === 'c0'), 'the least recently used went first')
  // A cookie removed from a loaded jar leaves the count.
  const last = registry.get('c9')
  last.jar.clear()
  t.equal(registry.cookiesLoaded, held(), 'a clear is counted')
  await collect()
  // Read back from disk: its cookies count again, and the bound still holds.
  const again = registry.get('c0')
  t.equal(cookieOf(again), 'k0=v0; k1=v0; k2=v0; k3=v0', 'reloaded with its cookies')
  t.equal(registry.cookiesLoaded, held())
  t.ok(held() <= 20)
})

t.test('the default loaded-profile bounds hold 10,000 profiles of 20 cookies without unloading', async (t) => {
  const { config } = loadConfig({ env: {}, flags: {} })
  t.ok(config.limits.maxProfilesLoaded >= 10_000, `maxProfilesLoaded ${config.limits.maxProfilesLoaded}`)
  t.ok(config.limits.maxCookiesLoaded >= 10_000 * 21, `maxCookiesLoaded ${config.limits.maxCookiesLoaded}`)
})

t.test('a reference held across an unload (an exchange in flight) never writes into a lost copy', async (t) => {
  const { registry, dataDir } = setup(t, { limits: { maxProfilesLoaded: 2, profileIdleUnloadMs: 0 } })
  const held = registry.get('inflight')
  await setCookie(t, held, 'a=1')
  for (let n = 0; n < 5; n++) registry.get(`other${n}`)
  t.notOk([...registry.loaded()].includes(held), 'unloaded while the request is in flight')
  // The upstream response arrives now and sets a cookie through the old reference.
  await setCookie(t, held, 'b=2')
  t.ok([...registry.loaded()].includes(held), 'the change put it back')
  t.equal(registry.get('inflight'), held, 'one instance per name')
  t.match(readFileSync(join(dataDir, 'jars', 'inflight.jsonl'), 'utf8'), '"key":"b"')
  // Unloaded again; a new lookup while the old object is alive gets that same object.
  for (let n = 0; n < 5; n++) registry.get(`again${n}`)
  t.equal(registry.get('inflight'), held, 'revived, not read again')
  t.equal(cookieOf(held), 'a=1; b=2')
})

t.test('an unloaded profile nobody holds is read from disk again (and GC frees it)', async (t) => {
  const { registry } = setup(t, { limits: { maxProfilesLoaded: 1, profileIdleUnloadMs: 0 } })
  let first: Profile | undefined = registry.get('gone')
  await setCookie(t, first, 'k=v')
  const ref = new WeakRef(first)
  first = undefined
  registry.get('someone-else')
  await waitFor(() => { gc(); return ref.deref() === undefined }, 'collection')
  const again = registry.find('gone')
  t.ok(again !== undefined, 'find reads an unloaded profile from disk')
  t.equal(cookieOf(again!), 'k=v')
  t.equal(registry.get('gone'), again)
  t.equal(registry.find('never-seen'), undefined, 'find does not create one')
})

t.test('idle profiles are unloaded after profileIdleUnloadMs; config profiles never', async (t) => {
  const { registry } = setup(t, { limits: { maxProfilesLoaded: 1000, profileIdleUnloadMs: 1 }, profiles: { declared: {} } })
  registry.get('declared')
  registry.get('dynamic')
  t.equal([...registry.loaded()].length, 2)
  await waitFor(() => [...registry.loaded()].length === 1, 'the idle sweep')
  t.same([...registry.loaded()].map((p) => p.name), ['declared'], 'the config profile is pinned')
  t.equal(registry.unloadIdle(Date.now() + 1000), 0, 'nothing left to unload')
})

t.test('config profiles are kept even beyond the limit', async (t) => {
  const { registry } = setup(t, { limits: { maxProfilesLoaded: 1, profileIdleUnloadMs: 0 }, profiles: { one: {}, two: {} } })
  registry.get('one')
  registry.get('two')
  registry.get('three')
  t.same([...registry.loaded()].map((p) => p.name).sort(), ['one', 'three', 'two'], 'the profile in use stays too')
  registry.get('four')
  t.same([...registry.loaded()].map((p) => p.name).sort(), ['four', 'one', 'two'])
})

t.test('a failing write is loud (persistError, problems, counter, log) and the profile stays loaded until it catches up', async (t) => {
  const { registry, dataDir, logs } = setup(t, { limits: { maxProfilesLoaded: 1, profileIdleUnloadMs: 0 } })
  const jars = join(dataDir, 'jars')
  const p = registry.get('broken')
  await setCookie(t, p, 'before=1')
  t.equal(p.persistError, null)
  await p.journal.suspend()
  // The disk goes away under the proxy.
  rmSync(jars, { recursive: true })
  writeFileSync(jars, '')
  await setCookie(t, p, 'during=2')
  t.equal((p.persistError as NodeJS.ErrnoException | null)?.code, 'ENOTDIR', 'persistError is set once pendingWrite settles')
  const problems = registry.problems as PersistProblem[]
  t.equal(problems.length, 1)
  t.match(problems[0], { kind: 'persist', profile: 'broken', code: 'ENOTDIR', file: join(jars, 'broken.jsonl') })
  t.ok(registry.persistFailuresTotal >= 1)
  t.equal(registry.failingProfiles, 1)
  t.ok(logs.some((l) => l.level === 50 && l.profile === 'broken' && /could not write cookie jar/.test(String(l.msg))), 'an error log line')
  t.equal(registry.unloadIdle(Date.now() + 1000), 0)
  t.ok([...registry.loaded()].includes(p), 'not unloaded while its changes are only in memory')
  // The disk recovers: the retry rewrites the whole jar.
  rmSync(jars)
  mkdirSync(jars)
  await waitFor(() => registry.problems.length === 0, 'recovery')
  t.equal(p.persistError, null)
  t.equal(registry.failingProfiles, 0)
  const text = readFileSync(join(jars, 'broken.jsonl'), 'utf8')
  t.match(text, '"key":"before"')
  t.match(text, '"key":"during"')
  t.ok(logs.some((l) => /written again/.test(String(l.msg))), 'recovery is logged')
})

t.test('a jar that cannot be written before exit is logged as lost; close releases the data-dir lock', async (t) => {
  const { registry, dataDir, logs } = setup(t)
  const jars = join(dataDir, 'jars')
  const p = registry.get('doomed')
  await setCookie(t, p, 'x=1')
  await p.journal.suspend()
  rmSync(jars, { recursive: true })
  writeFileSync(jars, '')
  await setCookie(t, p, 'y=2')
  t.ok(existsSync(join(dataDir, LOCK_FILE)))
  await registry.close()
  t.ok(logs.some((l) => l.level === 50 && /lost/.test(String(l.msg))))
  t.notOk(existsSync(join(dataDir, LOCK_FILE)), 'lock released')
})

t.test('a profile being unloaded is revived, not read twice', async (t) => {
  const { registry } = setup(t, { limits: { maxProfilesLoaded: 1, profileIdleUnloadMs: 0 } })
  const a = registry.get('a')
  a.capture(['z=1'], URL_A, 1) // a write in flight
  registry.get('b') // unloads a while its journal is busy
  t.equal(registry.find('a'), a)
  await a.pendingWrite
  await new Promise((resolve) => setTimeout(resolve, 20))
  t.ok([...registry.loaded()].includes(a))
})

t.test('remove: a held reference (an exchange in flight), an unloaded profile, a second removal', async (t) => {
  const { registry, dataDir } = setup(t, { limits: { maxProfilesLoaded: 5, profileIdleUnloadMs: 0 } })
  const file = join(dataDir, 'jars', 'gone.jsonl')
  const held = registry.get('gone')
  await setCookie(t, held, 'a=1')
  t.ok(existsSync(file))
  const [first, second] = await Promise.all([registry.remove('gone'), registry.remove('gone')])
  t.ok(first && second, 'a second removal during the first waits for it')
  t.notOk(existsSync(file), 'the file is gone')
  // The in-flight exchange stores its Set-Cookie now.
  t.notOk(held.capture(['late=1'], URL_A, 2), 'a deleted profile stores nothing from responses')
  held.jar.store.putCookie(held.jar.cookies()[0]!, () => {})
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.notOk(existsSync(file), 'a change through the old reference writes nothing')
  t.notOk(registry.names().includes('gone'), 'and is not listed')
  t.not(registry.get('gone'), held, 'the name starts over with a new, empty profile')
  t.equal(cookieOf(registry.get('gone')), '')
  t.equal(await registry.remove('never-was'), false)

  // Unloaded (only on disk): found and removed without being kept.
  for (let n = 0; n < 10; n++) await setCookie(t, registry.get(`u${n}`), `s=${n}`)
  await collect()
  t.ok(await registry.remove('u0'))
  t.notOk(existsSync(join(dataDir, 'jars', 'u0.jsonl')))
  t.equal(cookieOf(registry.get('u0')), '')
})

t.test('create and summaries', async (t) => {
  const { registry, dataDir } = setup(t, { profiles: { declared: {} } })
  t.ok(registry.create('fresh'))
  t.ok(existsSync(join(dataDir, 'jars', 'fresh.jsonl')), 'an empty file, so it is listed after a restart')
  t.notOk(registry.create('fresh'))
  t.notOk(registry.create('declared'), 'a declared profile exists')
  writeFileSync(join(dataDir, 'jars', 'cold.jsonl'), '')
  t.same(registry.summaries(), [
    { name: 'cold', cookies: null, loaded: false, declared: false },
    { name: 'declared', cookies: 0, loaded: true, declared: true },
    { name: 'fresh', cookies: 0, loaded: true, declared: false }
  ])
})
