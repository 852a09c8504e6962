/**
 * Which profile a request is (src/session/resolve-profile.ts): on its own,
 * and inside a tunnel opened as one profile.
 */
import t from 'tap'
import { resolveProfileName, resolveTunnelProfileName } from '../../src/session/resolve-profile.js'

const basic = (userPass: string): string => 'Basic ' + Buffer.from(userPass).toString('base64')
const users = new Map([['alice', 'a-pw'], ['bob', 'b-pw']])
const codeOf = (fn: () => unknown): string | undefined => {
  try { fn() } catch (err) { return (err as { code?: string }).code }
  return undefined
}

t.test('resolveProfileName: the Proxy-Authorization user, else X-Session-Profile, else default', async (t) => {
  t.equal(resolveProfileName(basic('alice:'), 'bob', null), 'alice')
  t.equal(resolveProfileName(undefined, 'bob', null), 'bob')
  t.equal(resolveProfileName(basic(':'), 'bob', null), 'bob', 'an empty user names no profile')
  t.equal(resolveProfileName(undefined, undefined, null), 'default')
  t.equal(resolveProfileName(basic('alice:a-pw'), 'bob', users), 'alice', 'with proxyAuth the user is the profile')
  t.equal(codeOf(() => resolveProfileName(undefined, 'bob', users)), 'SP_PROXY_AUTH_REQUIRED')
  t.equal(codeOf(() => resolveProfileName(basic('alice:nope'), undefined, users)), 'SP_PROXY_AUTH_REQUIRED')
  t.equal(codeOf(() => resolveProfileName('Bearer x', undefined, null)), 'SP_PROXY_AUTH_SCHEME')
})

t.test('resolveTunnelProfileName: a tunnel is one profile', async (t) => {
  t.equal(resolveTunnelProfileName(undefined, undefined, users, 'alice'), 'alice', 'no credentials of its own: the tunnel\'s (the CONNECT was checked)')
  t.equal(resolveTunnelProfileName(undefined, '', null, 'alice'), 'alice', 'an empty X-Session-Profile names nothing')
  t.equal(resolveTunnelProfileName(undefined, 'alice', null, 'alice'), 'alice')
  t.equal(resolveTunnelProfileName(basic('alice:a-pw'), undefined, users, 'alice'), 'alice', 'repeating the tunnel\'s own credentials')
  t.equal(resolveTunnelProfileName(basic(':'), undefined, null, 'alice'), 'alice', 'an empty user without proxyAuth names nothing')
  t.equal(codeOf(() => resolveTunnelProfileName(basic('bob:b-pw'), undefined, users, 'alice')), 'SP_TUNNEL_PROFILE', 'valid credentials of another user')
  t.equal(codeOf(() => resolveTunnelProfileName(basic('bob:'), undefined, null, 'alice')), 'SP_TUNNEL_PROFILE', 'another user without proxyAuth')
  t.equal(codeOf(() => resolveTunnelProfileName(undefined, 'bob', null, 'alice')), 'SP_TUNNEL_PROFILE', 'X-Session-Profile naming another')
  t.equal(codeOf(() => resolveTunnelProfileName(basic('alice:'), 'bob', null, 'alice')), 'SP_TUNNEL_PROFILE', 'the header is checked even when the user is the tunnel\'s')
  t.equal(codeOf(() => resolveTunnelProfileName(basic('alice:guess'), undefined, users, 'alice')), 'SP_PROXY_AUTH_REQUIRED', 'a wrong password is 407, before any profile comparison')
  t.equal(codeOf(() => resolveTunnelProfileName(basic('mallory:'), undefined, users, 'alice')), 'SP_PROXY_AUTH_REQUIRED')
  t.equal(codeOf(() => resolveTunnelProfileName('Negotiate x', undefined, users, 'alice')), 'SP_PROXY_AUTH_SCHEME')
  let message = ''
  try { resolveTunnelProfileName(undefined, 'x'.repeat(500), null, 'alice') } catch (err) { message = (err as Error).message }
  t.ok(message.length < 300, 'a long name is cut in the message')
  t.match(message, /tunnel is profile "alice"/)
})
