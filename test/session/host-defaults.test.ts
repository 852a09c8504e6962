/**
 * Host default headers (src/session/host-defaults.ts): the `override: true`
 * form, which replaces the client's own header instead of only filling in.
 */
import t from 'tap'
import { validate } from '../../src/config/load.js'
import type { HostRule } from '../../src/config/schema.js'
import { buildRequestHeaders, scanRequestHeaders } from '../../src/proxy/headers.js'
import { HostDefaults } from '../../src/session/host-defaults.js'

const rules: HostRule[] = [{ match: 'api.example.com', headers: { 'User-Agent': { value: 'probe/1', override: true }, 'X-Tenant': 'acme', Accept: { value: 'application/json' } } }]

t.test('forHost marks override headers; a plain or object value without override only fills in', async (t) => {
  const d = new HostDefaults(rules, [], 'alice')
  t.same(d.forHost('api.example.com', 'api.example.com', 80), [['user-agent', 'User-Agent', 'probe/1', true], ['x-tenant', 'X-Tenant', 'acme'], ['accept', 'Accept', 'application/json']])
  const described = d.describe('api.example.com', 80)
  t.same(described.map((h) => [h.name, h.override]), [['User-Agent', true], ['X-Tenant', false], ['Accept', false]], 'explain sees which replace the client\'s value')
})

t.test('a later rule without override wins over an earlier override, and the reverse', async (t) => {
  const later = new HostDefaults(rules, [{ match: 'api.example.com', headers: { 'User-Agent': 'alice-agent' } }], 'alice')
  t.same(later.forHost('api.example.com', 'api.example.com', 80)[0], ['user-agent', 'User-Agent', 'alice-agent'], 'the profile\'s plain value: fill-in only')
  const stronger = new HostDefaults([{ match: '*', headers: { 'User-Agent': 'x' } }], [{ match: 'api.example.com', headers: { 'User-Agent': { value: 'alice/2', override: true } } }], 'alice')
  t.same(stronger.forHost('api.example.com', 'api.example.com', 80)[0], ['user-agent', 'User-Agent', 'alice/2', true])
})

t.test('buildRequestHeaders: an override default replaces the client\'s header, others fill in', async (t) => {
  const d = new HostDefaults(rules, [], 'alice').forHost('api.example.com', 'api.example.com', 80)
  const raw = ['Host', 'api.example.com', 'User-Agent', 'curl/8.5.0', 'Accept', '*/*', 'user-agent', 'second']
  const out = buildRequestHeaders(raw, scanRequestHeaders(raw), d, undefined, 'api.example.com', '1.1 me')
  t.same(out, ['Accept', '*/*', 'User-Agent', 'probe/1', 'X-Tenant', 'acme', 'host', 'api.example.com', 'via', '1.1 me'], 'every client User-Agent is gone, one configured value goes; the client\'s Accept wins')
  const none = ['Host', 'api.example.com']
  t.same(buildRequestHeaders(none, scanRequestHeaders(none), d, undefined, 'api.example.com', 'v'), ['User-Agent', 'probe/1', 'X-Tenant', 'acme', 'Accept', 'application/json', 'host', 'api.example.com', 'via', 'v'], 'a client that sends none gets all of them')
  const framing = ['Content-Length', '2', 'Host', 'h']
  t.same(buildRequestHeaders(framing, scanRequestHeaders(framing), [['content-length', 'Content-Length', '9', true], ['host', 'Host', 'evil', true]], undefined, 'h', 'v'), ['Content-Length', '2', 'host', 'h', 'via', 'v'], 'override never touches framing or Host: the proxy owns them')
})

t.test('the config schema: a string, or { value, override }', async (t) => {
  const ok = (headers: unknown): boolean => { try { validate({ hosts: [{ match: 'a.example', headers }] }, 'test'); return true } catch { return false } }
  t.ok(ok({ 'User-Agent': 'x' }))
  t.ok(ok({ 'User-Agent': { value: 'x', override: true } }))
  t.ok(ok({ 'User-Agent': { value: 'x' } }))
  t.notOk(ok({ 'User-Agent': { override: true } }), 'value is required')
  t.notOk(ok({ 'User-Agent': { value: 'x', override: 'yes' } }), 'override is a boolean')
  t.notOk(ok({ 'User-Agent': { value: 'x', replace: true } }), 'no other keys')
  t.notOk(ok({ 'User-Agent': 3 }))
  t.throws(() => validate({ hosts: [{ match: 'a.example', headers: { 'User-Agent': { override: true } } }] }, 'test'), /hosts\/0\/headers\/User-Agent|hosts\[0\]\.headers\.User-Agent|User-Agent/, 'the error names the header')
  t.throws(() => new HostDefaults([{ match: 'a.example', headers: { 'X-A': { value: 'a\r\nb', override: true } } }], [], 'p'), /hosts\[0\]\.headers\.X-A: value contains a line break/)
})
