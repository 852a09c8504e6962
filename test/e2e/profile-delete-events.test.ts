/**
 * DELETE of a profile takes its session events with it: the events held in
 * memory (GET events is empty, numbering starts over) and the events file,
 * which a write queued just before the delete must not bring back.
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { cleanup, startProxy } from '../helpers/proxy.js'

const ADMIN = { 'x-session-proxy-admin': '1', 'content-type': 'application/json' }

t.test('DELETE drops the events in memory and the events file, and it stays gone', async (t) => {
  const proxy = await startProxy({})
  t.teardown(async () => { await proxy.stop(); cleanup(proxy.dataDir) })
  const file = join(proxy.dataDir, 'events', 'dora.jsonl')
  const call = async (method: string, path: string, body?: unknown): Promise<Response> =>
    await fetch(`${proxy.url}${path}`, { method, headers: body === undefined ? { 'x-session-proxy-admin': '1' } : ADMIN, body: body === undefined ? undefined : JSON.stringify(body) })
  t.equal((await call('POST', '/_session/profiles', { name: 'dora' })).status, 201)
  for (let i = 0; i < 3; i++) t.equal((await call('PUT', `/_session/profiles/dora/cookies/c${i}`, { value: 'v', domain: '127.0.0.1', path: '/' })).status, 200)
  const before = await (await call('GET', '/_session/profiles/dora/events')).json() as { lastSeq: number }
  t.ok(before.lastSeq >= 3, 'cookie edits recorded events')
  // A PUT here would create the profile again, so the last edit comes before the DELETE, not with it.
  t.equal((await call('PUT', '/_session/profiles/dora/cookies/last', { value: 'v', domain: '127.0.0.1', path: '/' })).status, 200)
  const del = await call('DELETE', '/_session/profiles/dora')
  t.equal(del.status, 204)
  t.notOk(existsSync(file), 'the events file is gone')
  const after = await (await call('GET', '/_session/profiles/dora/events')).json() as { lastSeq: number, events: unknown[] }
  t.same(after.events, [], 'no events are left in memory')
  t.equal(after.lastSeq, 0)
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.notOk(existsSync(file), 'and it stays gone')
})
