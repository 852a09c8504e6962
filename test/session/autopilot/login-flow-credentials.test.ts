/**
 * login-flow.ts with a credentials file: a row fills the username and
 * password the rule leaves out; the rule's own win; a missing row is
 * SP_CREDENTIALS_MISSING; a broken file is SP_SECRET_UNAVAILABLE; a flow
 * that sends no credentials never looks.
 */
import { mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { LoginFlow, toStepResponse, type StepSender } from '../../../src/session/autopilot/login-flow.js'
import { ProfileAutopilot } from '../../../src/session/autopilot/host-autopilot.js'
import { CredentialsFile } from '../../../src/session/credentials.js'

const dir = mkdtempSync(join(tmpdir(), 'sp-flowcreds-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
const csv = join(dir, 'users.csv')
writeFileSync(csv, 'profile,username,password\nvu-1,user1,"p,w1"\n')
const file = new CredentialsFile(csv)

function basicSender (): { send: StepSender, auth: string[] } {
  const auth: string[] = []
  const send: StepSender = async (req) => {
    auth.push(req.headers.find(([n]) => n.toLowerCase() === 'authorization')?.[1] ?? '')
    return toStepResponse(200, [], null, '')
  }
  return { send, auth }
}
const decode = (h: string): string => Buffer.from(h.replace(/^Basic /, ''), 'base64').toString('utf8')

t.test('a row fills what the rule leaves out', async (t) => {
  const { send, auth } = basicSender()
  await new LoginFlow({ preset: 'basic-session' }, 'w', { profile: 'vu-1', file }).run('http://h:1', 'http://h:1/', send, () => undefined)
  t.equal(decode(auth[0]!), 'user1:p,w1')
})

t.test("the rule's own username and password win", async (t) => {
  const { send, auth } = basicSender()
  await new LoginFlow({ preset: 'basic-session', username: 'fixed' }, 'w', { profile: 'vu-1', file }).run('http://h:1', 'http://h:1/', send, () => undefined)
  t.equal(decode(auth[0]!), 'fixed:p,w1', 'username from the rule, password from the row')
  const both = basicSender()
  await new LoginFlow({ preset: 'basic-session', username: 'fixed', password: { value: 'own' } }, 'w', { profile: 'nobody', file }).run('http://h:1', 'http://h:1/', both.send, () => undefined)
  t.equal(decode(both.auth[0]!), 'fixed:own', 'a rule with both never needs a row')
})

t.test('no row: SP_CREDENTIALS_MISSING (502) naming the profile and the file', async (t) => {
  const { send, auth } = basicSender()
  await t.rejects(new LoginFlow({ preset: 'basic-session' }, 'w', { profile: 'vu-9', file }).run('http://h:1', 'http://h:1/', send, () => undefined),
    { code: 'SP_CREDENTIALS_MISSING', statusCode: 502, step: 'credentials', message: new RegExp(`profile "vu-9" has no row in the credentials file ${csv.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`) })
  t.same(auth, [], 'nothing was sent')
})

t.test('a custom flow that sends no credentials never looks', async (t) => {
  const { send, auth } = basicSender()
  await new LoginFlow({ steps: [{ url: '/ping' }] }, 'w', { profile: 'vu-9', file }).run('http://h:1', 'http://h:1/', send, () => undefined)
  t.equal(auth.length, 1)
})

t.test('a file that changed into something broken: SP_SECRET_UNAVAILABLE naming the file', async (t) => {
  const broken = join(dir, 'broken.csv')
  writeFileSync(broken, 'profile,username,password\nvu-1,u,p\n')
  const f = new CredentialsFile(broken)
  writeFileSync(broken, 'profile,username,password\nvu-1,"unclosed\n')
  utimesSync(broken, new Date(), new Date(Date.now() + 5000))
  const { send } = basicSender()
  await t.rejects(new LoginFlow({ preset: 'basic-session' }, 'w', { profile: 'vu-1', file: f }).run('http://h:1', 'http://h:1/', send, () => undefined),
    { code: 'SP_SECRET_UNAVAILABLE', message: /broken\.csv, line 2: a quoted field is not closed/ })
})

t.test('ProfileAutopilot reads the file at construction: a bad one is a config error', async (t) => {
  const rules = [{ match: 'h:1', login: { preset: 'basic-session' as const } }]
  t.ok(new ProfileAutopilot(rules, 'vu-1', undefined, { file: csv }).rules[0]!.login)
  t.throws(() => new ProfileAutopilot(rules, 'vu-*', undefined, { file: join(dir, 'nope.csv') }), { name: 'ConfigError', message: /profiles\.vu-\*\.credentials: cannot read credentials file/ })
})
