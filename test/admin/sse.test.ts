/**
 * streamEvents on a real Fastify server and raw sockets: a reading client
 * gets bursts larger than the limit whole and in order; a client that stops
 * reading is dropped when it stalls for two heartbeats or when the event log
 * outruns it; resuming with Last-Event-ID and ?since.
 */
import net from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import pino from 'pino'
import t from 'tap'
import { streamEvents, wantsEventStream } from '../../src/admin/sse.js'
import type { EventsConfig } from '../../src/contracts/settings.js'
import { SessionEvents } from '../../src/observe/events.js'

interface Ctx { app: FastifyInstance, port: number, events: SessionEvents, logs: string[] }

async function serve (t: { teardown: (fn: () => Promise<void>) => void }, opts: { maxPerProfile?: number, limit?: number, heartbeatMs?: number } = {}): Promise<Ctx> {
  const logs: string[] = []
  const log = pino({ level: 'warn' }, { write: (s: string) => { logs.push(s) } })
  const config: EventsConfig = { maxPerProfile: opts.maxPerProfile ?? 100000, maxTotal: 1000000, persist: false, sessionCookies: [], fixationWindowMs: 0 }
  const events = new SessionEvents(config, null, log)
  const app = Fastify({ forceCloseConnections: true })
  app.get<{ Querystring: { since?: string } }>('/events', async (req, reply) => {
    if (!wantsEventStream(req)) return events.list('p')
    streamEvents(req, reply, events, 'p', req.query.since === undefined ? undefined : Number(req.query.since), { maxBufferedBytes: opts.limit ?? 32768, heartbeatMs: opts.heartbeatMs ?? 60_000, log })
    return reply
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  t.teardown(async () => { await app.close() })
  return { app, port: (app.server.address() as net.AddressInfo).port, events, logs }
}

const big = (events: SessionEvents, n: number, size = 8000): void => {
  for (let i = 0; i < n; i++) events.record('p', { type: 'cookie.rejected', requestId: i, name: `c${i}`, url: 'http://x/' + 'u'.repeat(size), reason: 'other', message: 'm' })
}

interface Client { socket: net.Socket, text: () => string, bytes: () => number, closed: Promise<void>, opened: Promise<void> }

function connect (port: number, headers: string[] = [], path = '/events'): Client {
  const socket = net.connect(port, '127.0.0.1')
  let text = ''
  let bytes = 0
  let opened: () => void = () => {}
  const openedP = new Promise<void>((resolve) => { opened = resolve })
  socket.on('data', (c: Buffer) => { bytes += c.length; text += c.toString('latin1'); if (text.includes('retry: 2000')) opened() })
  socket.on('error', () => {})
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()))
  socket.write([`GET ${path} HTTP/1.1`, 'Host: x', 'Accept: text/event-stream', ...headers, '', ''].join('\r\n'))
  return { socket, text: () => text, bytes: () => bytes, closed, opened: openedP }
}

const ids = (text: string): number[] => [...text.matchAll(/^id: (\d+)$/gm)].map((m) => Number(m[1]))
const tick = async (ms = 10): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

t.test('a reading client gets a burst far larger than the limit, whole and in order', async (t) => {
  const ctx = await serve(t, { limit: 16384 })
  const c = connect(ctx.port)
  await c.opened
  big(ctx.events, 400)
  while (ids(c.text()).length < 400) await tick()
  t.same(ids(c.text()), Array.from({ length: 400 }, (_, i) => i + 1))
  big(ctx.events, 3)
  while (ids(c.text()).length < 403) await tick()
  t.equal(ids(c.text()).at(-1), 403, 'and live events after it')
  t.same(ctx.logs, [], 'never dropped')
  c.socket.destroy()
})

t.test('a client that stops reading: dropped after two heartbeats without progress', async (t) => {
  const ctx = await serve(t, { limit: 32768, heartbeatMs: 50 })
  const c = connect(ctx.port)
  await c.opened
  c.socket.pause()
  // Far more than the kernel buffers hold: the stream falls behind and stays there.
  for (let round = 0; round < 200 && ctx.logs.length === 0; round++) { big(ctx.events, 50); await tick(5) }
  while (ctx.logs.length === 0) await tick(20)
  const line = JSON.parse(ctx.logs[0]!) as { why: string, bufferedBytes: number, limit: number }
  t.match(line, { why: /two heartbeat intervals/, limit: 32768 })
  t.ok(line.bufferedBytes <= 32768 + 64 * 1024, `at most the limit and one event queued (${line.bufferedBytes})`)
  c.socket.resume()
  await c.closed
  t.ok(c.bytes() < ctx.events.list('p', { limit: 0 }).lastSeq * 8000, 'it did not get everything')
})

t.test('a client the event log outruns is dropped at once', async (t) => {
  const ctx = await serve(t, { limit: 32768, maxPerProfile: 20 })
  const c = connect(ctx.port)
  await c.opened
  c.socket.pause()
  for (let round = 0; round < 500 && ctx.logs.length === 0; round++) { big(ctx.events, 20); await tick(2) }
  t.match(JSON.parse(ctx.logs[0]!), { why: /no longer holds/ })
  c.socket.resume()
  await c.closed
  const seen = ids(c.text())
  t.same(seen, Array.from({ length: seen.length }, (_, i) => i + 1), 'what it got was in order, without a gap')
})

t.test('resume: Last-Event-ID, then ?since; a backlog partly gone gives what is left', async (t) => {
  const ctx = await serve(t, { maxPerProfile: 5 })
  for (let i = 0; i < 8; i++) ctx.events.record('p', { type: 'jar.cleared', requestId: null })
  const fromId = connect(ctx.port, ['Last-Event-ID: 6'])
  const fromSince = connect(ctx.port, [], '/events?since=0')
  const fresh = connect(ctx.port, ['Last-Event-ID: nope'])
  await Promise.all([fromId.opened, fromSince.opened, fresh.opened])
  while (ids(fromSince.text()).length < 5 || ids(fromId.text()).length < 2) await tick()
  t.same(ids(fromId.text()), [7, 8])
  t.same(ids(fromSince.text()), [4, 5, 6, 7, 8], 'the oldest held onwards')
  ctx.events.record('p', { type: 'jar.cleared', requestId: null })
  while (ids(fresh.text()).length < 1) await tick()
  t.same(ids(fresh.text()), [9], 'no id: live events only')
  t.same(ctx.logs, [])
  for (const c of [fromId, fromSince, fresh]) c.socket.destroy()
  await Promise.all([fromId.closed, fromSince.closed, fresh.closed])
  ctx.events.record('p', { type: 'jar.cleared', requestId: null })
  t.pass('a closed stream is unsubscribed without error')
})

t.test('heartbeats keep an idle stream alive', async (t) => {
  const ctx = await serve(t, { heartbeatMs: 20 })
  const c = connect(ctx.port)
  await c.opened
  while (!c.text().includes(': ping')) await tick()
  t.pass('pinged')
  c.socket.destroy()
})
