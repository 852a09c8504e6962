/** src/server.ts: who may use a profile port (portProfileRefusal). */
import type { IncomingMessage } from 'node:http'
import t from 'tap'
import { portProfileRefusal } from '../src/server.js'

const req = (headers: Record<string, string>): IncomingMessage => ({ headers } as unknown as IncomingMessage)
const basic = (userPass: string): string => `Basic ${Buffer.from(userPass).toString('base64')}`

t.test('without proxyAuth: nothing or the port\'s own profile passes, another profile is refused', async (t) => {
  t.equal(portProfileRefusal(req({}), 'alice', null), null)
  t.equal(portProfileRefusal(req({ 'proxy-authorization': basic('alice:') }), 'alice', null), null)
  t.equal(portProfileRefusal(req({ 'x-session-profile': 'alice' }), 'alice', null), null)
  t.equal(portProfileRefusal(req({ 'proxy-authorization': basic(':') }), 'alice', null), null, 'an empty user names nothing')
  t.match(portProfileRefusal(req({ 'x-session-profile': 'bob' }), 'alice', null), { code: 'SP_PROFILE_PORT', statusCode: 403, message: /profile "alice".*"bob"/ })
  t.match(portProfileRefusal(req({ 'proxy-authorization': basic('bob:') }), 'alice', null), { code: 'SP_PROFILE_PORT' })
  t.match(portProfileRefusal(req({ 'proxy-authorization': basic('alice:'), 'x-session-profile': 'bob' }), 'alice', null), { code: 'SP_PROFILE_PORT' }, 'both are checked')
  t.match(portProfileRefusal(req({ 'proxy-authorization': 'Bearer x' }), 'alice', null), { statusCode: 400 }, 'a scheme the proxy does not read')
})

t.test('with proxyAuth: the password is checked as on the main port', async (t) => {
  const users = new Map([['alice', 'pw'], ['bob', 'pw2']])
  t.match(portProfileRefusal(req({}), 'alice', users), { statusCode: 407 })
  t.match(portProfileRefusal(req({ 'proxy-authorization': basic('alice:wrong') }), 'alice', users), { statusCode: 407 })
  t.equal(portProfileRefusal(req({ 'proxy-authorization': basic('alice:pw') }), 'alice', users), null)
  t.match(portProfileRefusal(req({ 'proxy-authorization': basic('bob:pw2') }), 'alice', users), { code: 'SP_PROFILE_PORT' }, 'valid credentials of another profile')
})
