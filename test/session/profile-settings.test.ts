/**
 * profile-settings.ts: glob keys under `profiles:` (`*`, `?`), exact names
 * before patterns, the longest literal prefix before file order, which
 * matched profiles are pinned; the schema accepting pattern keys; and the
 * registry opening a pattern-matched profile on demand.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import t from 'tap'
import { loadConfig } from '../../src/config/load.js'
import type { ProfileConfig } from '../../src/config/schema.js'
import { CookieJarStore } from '../../src/session/jar-files.js'
import { globToRegExp, isPattern, isPinned, matchProfileSettings, resolveProfileSettings } from '../../src/session/profile-settings.js'
import { ProfileRegistry } from '../../src/session/profiles.js'

const rule = { match: '127.0.0.1:8080', login: { preset: 'tomcat-form' as const } }

t.test('globToRegExp and isPattern', async (t) => {
  t.ok(globToRegExp('vu-*').test('vu-1'))
  t.ok(globToRegExp('vu-*').test('vu-'), '* matches nothing too')
  t.notOk(globToRegExp('vu-*').test('xvu-1'), 'anchored')
  t.ok(globToRegExp('load-?').test('load-7'))
  t.notOk(globToRegExp('load-?').test('load-17'), '? is exactly one character')
  t.notOk(globToRegExp('a.b*').test('axb1'), '. is literal')
  t.ok(globToRegExp('*').test('anything'))
  t.ok(isPattern('a*') && isPattern('a?') && !isPattern('alice'))
})

t.test('matchProfileSettings: exact before patterns, longest literal prefix, then file order', async (t) => {
  const profiles: Record<string, ProfileConfig> = {
    '*': { capture: { enabled: true } },
    'vu-*': { hosts: [] },
    'vu-1?': { autopilot: [] },
    'vu-7': {},
    'load-?': {},
    'load*': {}
  }
  t.same(matchProfileSettings(profiles, 'vu-7'), { key: 'vu-7', settings: profiles['vu-7'], exact: true }, 'an exact name wins')
  t.equal(matchProfileSettings(profiles, 'vu-12')?.key, 'vu-1?', 'the longer literal prefix wins')
  t.equal(matchProfileSettings(profiles, 'vu-3')?.key, 'vu-*')
  t.equal(matchProfileSettings(profiles, 'load-1')?.key, 'load-?', '"load-" is longer than "load"')
  t.equal(matchProfileSettings(profiles, 'loader')?.key, 'load*')
  t.equal(matchProfileSettings(profiles, 'alice')?.key, '*', 'the catch-all')
  t.equal(matchProfileSettings({ 'a*': {}, 'a?': {} }, 'ab')?.key, 'a*', 'a tie goes to the first in the file')
  t.equal(matchProfileSettings({ 'a?': {}, 'a*': {} }, 'ab')?.key, 'a?')
  t.equal(matchProfileSettings({ 'vu-*': {} }, 'alice'), undefined)
  t.equal(matchProfileSettings({ 'vu-*': {} }, 'toString'), undefined, 'no prototype keys')
})

t.test('isPinned: exact names always; a pattern only with an autopilot and a credentials row', async (t) => {
  const withRow = (): boolean => true
  const noRow = (): boolean => false
  t.equal(isPinned(undefined, 'x', withRow), false)
  t.equal(isPinned({ key: 'a', settings: {}, exact: true }, 'a', noRow), true)
  t.equal(isPinned({ key: 'vu-*', settings: { autopilot: [rule] }, exact: false }, 'vu-1', withRow), false, 'no credentials file: any name could match')
  t.equal(isPinned({ key: 'vu-*', settings: { autopilot: [rule], credentials: { file: 'u.csv' } }, exact: false }, 'vu-1', withRow), true)
  t.equal(isPinned({ key: 'vu-*', settings: { autopilot: [rule], credentials: { file: 'u.csv' } }, exact: false }, 'vu-9', noRow), false, 'no row')
  t.equal(isPinned({ key: 'vu-*', settings: { autopilot: [], credentials: { file: 'u.csv' } }, exact: false }, 'vu-1', withRow), false, 'no autopilot')
})

t.test('the schema accepts pattern keys and refuses nonsense', async (t) => {
  const ok = loadConfig({ env: {}, flags: { profiles: { 'vu-*': {}, 'load-?': {}, '*': {}, alice: {} } } as never })
  t.same(Object.keys(ok.config.profiles).sort(), ['*', 'alice', 'load-?', 'vu-*'])
  for (const bad of ['a b', '-x', 'vu/*', '', '.hidden', 'x'.repeat(65), 'vu-[0-9]']) {
    t.throws(() => loadConfig({ env: {}, flags: { profiles: { [bad]: {} } } as never }), { name: 'ConfigError' }, `refused: ${JSON.stringify(bad)}`)
  }
  t.throws(() => loadConfig({ env: {}, flags: { profiles: { 'vu-*': { credentials: {} } } } as never }), { message: /file/ }, 'credentials needs a file')
})

t.test('the registry: a pattern-matched profile exists on demand, with its block', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sp-psettings-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const csv = join(dir, 'users.csv')
  writeFileSync(csv, 'profile,username,password\nvu-1,user1,pw1\n')
  const { config } = loadConfig({
    env: {},
    flags: {
      dataDir: join(dir, 'data'),
      profiles: {
        'vu-*': { credentials: { file: csv }, autopilot: [rule] },
        'tmp-*': { autopilot: [{ ...rule, login: { preset: 'tomcat-form', username: 'u', password: { value: 'p' } } }] }
      }
    } as never
  })
  const files = new CookieJarStore(config.dataDir!)
  files.init()
  const registry = new ProfileRegistry(config, files, pino({ level: 'silent' }))
  t.teardown(async () => await registry.close())
  const vu1 = registry.find('vu-1')
  t.ok(vu1, 'vu-1 exists without a block of its own')
  t.ok(vu1?.autopilot, 'with the autopilot of vu-*')
  t.equal(vu1?.pinned, true, 'pinned: it has a row')
  t.equal(registry.find('vu-2')?.pinned, false, 'matched without a row: unloads like any profile')
  t.equal(registry.find('tmp-1')?.pinned, false, 'no credentials file: not pinned')
  t.equal(registry.find('alice'), undefined, 'a name nothing matches does not exist')
  t.same(resolveProfileSettings(config.profiles, 'vu-1'), { settings: config.profiles['vu-*'], pinned: true })
  t.same(resolveProfileSettings(config.profiles, 'nobody'), { settings: undefined, pinned: false })
})
