/** Compiling and running hook lists (src/pipeline/hooks.ts). */
import t from 'tap'
import { Flow } from '../../src/pipeline/flow.js'
import { NO_HOOKS, compileHooks, runErrorHooks, runHooks } from '../../src/pipeline/hooks.js'
import type { SessionProxyError } from '../../src/errors.js'

const flow = (): Flow => new Flow(1, 'p', 'http', 'GET', 'http://a.test/', ['host', 'a.test'])

t.test('no addon, or addons without hooks, compile to the shared empty list', async (t) => {
  t.equal(compileHooks([]), NO_HOOKS)
  t.equal(compileHooks([{ name: 'n', addon: { name: 'n' } }]), NO_HOOKS)
  t.equal(NO_HOOKS.size, 0)
})

t.test('lists keep load order, per hook, bound to their addon', async (t) => {
  const seen: string[] = []
  const a = { name: 'a', tag: 'A', request (this: { tag: string }) { seen.push(`${this.tag}.request`) }, error () { seen.push('a.error') } }
  const hooks = compileHooks([{ name: 'a', addon: a }, { name: 'b', addon: { response: () => { seen.push('b.response') }, request: () => { seen.push('b.request') } } }])
  t.equal(hooks.size, 4)
  t.same(hooks.request.map((h) => h.addon), ['a', 'b'])
  t.same(hooks.response.map((h) => h.addon), ['b'])
  t.equal(runHooks(hooks, 'request', flow()), undefined, 'sync hooks run synchronously')
  t.same(seen, ['A.request', 'b.request'])
})

t.test('an async hook turns the rest async, in order', async (t) => {
  const seen: string[] = []
  const hooks = compileHooks([
    { name: 'one', addon: { request: () => { seen.push('one') } } },
    { name: 'two', addon: { request: async () => { await new Promise((resolve) => setTimeout(resolve, 5)); seen.push('two') } } },
    { name: 'three', addon: { request: () => { seen.push('three') } } }
  ])
  const p = runHooks(hooks, 'request', flow())
  t.ok(p instanceof Promise)
  t.same(seen, ['one'])
  await p
  t.same(seen, ['one', 'two', 'three'])
})

t.test('respond() stops the request hooks; it works after an await too', async (t) => {
  const seen: string[] = []
  const hooks = compileHooks([
    { name: 'answer', addon: { request: async (f) => { await Promise.resolve(); f.respond({ body: 'hi' }) } } },
    { name: 'later', addon: { request: () => { seen.push('later') } } }
  ])
  const f = flow()
  await runHooks(hooks, 'request', f)
  t.equal(f.answer?.body.toString(), 'hi')
  t.same(seen, [], 'later hooks do not run')
  t.throws(() => f.respond({}), 'not outside a hook')
})

t.test('a throwing or rejecting hook is SP_ADDON_ERROR naming addon and hook', async (t) => {
  const throwing = compileHooks([{ name: 'boom.mjs', addon: { response: () => { throw new Error('bad') } } }])
  t.throws(() => runHooks(throwing, 'response', flow()), { code: 'SP_ADDON_ERROR', statusCode: 502, message: 'addon "boom.mjs" failed in its response hook: bad' })
  const rejecting = compileHooks([{ name: 'r', addon: { request: async () => await Promise.reject(new Error('later')) } }])
  await t.rejects(runHooks(rejecting, 'request', flow()) as Promise<void>, { code: 'SP_ADDON_ERROR', message: 'addon "r" failed in its request hook: later' })
  const second = compileHooks([{ name: 'ok', addon: { request: async () => {} } }, { name: 'no', addon: { request: () => { throw new Error('x') } } }])
  await t.rejects(runHooks(second, 'request', flow()) as Promise<void>, { message: /addon "no" failed in its request hook/ })
  // eslint-disable-next-line no-throw-literal -- what an addon might do
  const value = compileHooks([{ name: 'v', addon: { request: () => { throw 'plain' } } }])
  t.throws(() => runHooks(value, 'request', flow()), { message: 'addon "v" failed in its request hook: plain' })
})

t.test('error hooks only report what they throw', async (t) => {
  const failures: SessionProxyError[] = []
  runErrorHooks(NO_HOOKS, flow(), (e) => failures.push(e))
  runErrorHooks(compileHooks([{ name: 's', addon: { error: () => { throw new Error('sync') } } }]), flow(), (e) => failures.push(e))
  runErrorHooks(compileHooks([{ name: 'a', addon: { error: async () => { throw new Error('async') } } }]), flow(), (e) => failures.push(e))
  await new Promise((resolve) => setImmediate(resolve))
  t.same(failures.map((e) => e.message), ['addon "s" failed in its error hook: sync', 'addon "a" failed in its error hook: async'])
})

t.test('an async hook that never settles fails after limits.addonHookTimeoutMs', async (t) => {
  const hooks = compileHooks([{ name: 'stuck', addon: { request: async () => await new Promise(() => {}) } }], 30)
  t.equal(hooks.timeoutMs, 30)
  await t.rejects(runHooks(hooks, 'request', flow()) as Promise<void>, { code: 'SP_ADDON_ERROR', message: 'addon "stuck" failed in its request hook: it did not settle within 30 ms (limits.addonHookTimeoutMs)' })
  const later = compileHooks([{ name: 'first', addon: { request: async () => {} } }, { name: 'second', addon: { request: async () => await new Promise(() => {}) } }], 30)
  await t.rejects(runHooks(later, 'request', flow()) as Promise<void>, { message: /addon "second" failed in its request hook: it did not settle/ })
})

t.test('an addon with `profiles` runs only for the profiles it names; each profile compiles once', async (t) => {
  const seen: string[] = []
  const hooks = compileHooks([
    { name: 'all', addon: { request: (f) => { seen.push(`all:${f.profile}`) } } },
    { name: 'vu', addon: { profiles: ['vu-*'], request: (f) => { seen.push(`vu:${f.profile}`) } } },
    { name: 'bob', addon: { profiles: ['bob'], response: () => { seen.push('bob.response') } } }
  ])
  t.equal(hooks.size, 3, 'the whole list still counts every hook (the hot path checks only that)')
  const vu1 = { name: 'vu-1' }
  const vu2 = { name: 'vu-2' }
  const plain = { name: 'default' }
  t.same(hooks.forProfile(vu1).request.map((h) => h.addon), ['all', 'vu'])
  t.equal(hooks.forProfile(vu1), hooks.forProfile(vu1), 'kept with the profile')
  t.equal(hooks.forProfile(vu1), hooks.forProfile(vu2), 'profiles that match the same addons share one list')
  t.same(hooks.forProfile(plain).request.map((h) => h.addon), ['all'])
  t.equal(hooks.forProfile({ name: 'bob' }).response.length, 1)
  runHooks(hooks.forProfile(vu1), 'request', new Flow(1, 'vu-1', 'http', 'GET', 'http://a.test/', []))
  runHooks(hooks.forProfile(plain), 'request', new Flow(2, 'default', 'http', 'GET', 'http://a.test/', []))
  t.same(seen, ['all:vu-1', 'vu:vu-1', 'all:default'])
  const onlyScoped = compileHooks([{ name: 'vu', addon: { profiles: ['vu-*'], request: () => {} } }])
  t.equal(onlyScoped.forProfile(plain), NO_HOOKS, 'a profile no addon applies to pays nothing')
  const unscoped = compileHooks([{ name: 'a', addon: { request: () => {} } }])
  t.equal(unscoped.forProfile(plain), unscoped, 'without scoped addons every profile gets the one list')
})
