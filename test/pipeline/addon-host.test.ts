/** Loading addon modules (src/pipeline/addon-host.ts). */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import pino from 'pino'
import t from 'tap'
import { loadAddon, loadAddons } from '../../src/pipeline/addon-host.js'
import { cleanup, tempDir } from '../helpers/proxy.js'

const log = pino({ level: 'silent' })
const dir = tempDir('sp-addon-host-')
t.teardown(() => cleanup(dir))
const mod = (name: string, code: string): string => {
  const file = join(dir, name)
  writeFileSync(file, code)
  return file
}

t.test('an object, a sync factory and an async factory', async (t) => {
  const obj = await loadAddon(mod('obj.mjs', 'export default { name: "obj", request () {} }'), {}, log)
  t.equal(obj.name, 'obj')
  const seen: unknown[] = []
  ;(globalThis as Record<string, unknown>).__addonSeen = seen
  const sync = await loadAddon(mod('sync.mjs', 'export default (ctx) => { globalThis.__addonSeen.push(ctx.config.port, typeof ctx.log.info); return { response () {} } }'), { port: 8080 }, log)
  t.equal(sync.name, 'sync.mjs', 'no name: the file name')
  t.same(seen, [8080, 'function'], 'the factory is called with { config, log }')
  const async = await loadAddon(mod('async.mjs', 'export default async () => { await null; return { name: "later", error () {} } }'), {}, log)
  t.equal(async.name, 'later')
  const all = await loadAddons([join(dir, 'obj.mjs'), join(dir, 'async.mjs')], {}, log)
  t.same(all.map((a) => a.name), ['obj', 'later'], 'in order')
})

t.test('what refuses the start: SP_ADDON_LOAD naming the file', async (t) => {
  const cases: Array<[string, string | null, RegExp]> = [
    ['none.mjs', null, /none\.mjs: no such file/],
    ['null.mjs', 'export default null', /must be an addon object .* not null/],
    ['num.mjs', 'export default 3', /not number/],
    ['name.mjs', 'export default { name: 3, request () {} }', /"name" must be a string/],
    ['hookless.mjs', 'export default { onRequest () {} }', /has no request, response or error hook \(it has onRequest\)/],
    ['throws.mjs', 'throw new Error("at import")', /at import/],
    ['profiles-str.mjs', 'export default { profiles: "vu-*", request () {} }', /"profiles" must be a non-empty list/],
    ['profiles-empty.mjs', 'export default { profiles: [], request () {} }', /"profiles" must be a non-empty list/],
    ['profiles-bad.mjs', 'export default { profiles: ["no good!"], request () {} }', /"profiles" must be a non-empty list/]
  ]
  for (const [name, code, message] of cases) {
    const file = code === null ? join(dir, name) : mod(name, code)
    await t.rejects(loadAddon(file, {}, log), { code: 'SP_ADDON_LOAD', message }, name)
  }
})
