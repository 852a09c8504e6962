/**
 * Server-Sent Events for the session event log. A client resumes where it
 * left off with Last-Event-ID (EventSource sends it on reconnect) or
 * ?since=SEQ; the backlog is sent after subscribing, so no event falls in a
 * gap between the two. A client that stops reading is disconnected once
 * 1 MiB is buffered for it, rather than buffering without bound: it
 * reconnects and resumes from its last id.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { SessionEvent } from '../observe/event-types.js'
import type { SessionEvents } from '../observe/events.js'

const HEARTBEAT_MS = 15_000
const MAX_BUFFERED = 1024 * 1024

export function wantsEventStream (req: FastifyRequest): boolean {
  return (req.headers.accept ?? '').includes('text/event-stream')
}

export function streamEvents (req: FastifyRequest, reply: FastifyReply, events: SessionEvents, profile: string, since: number | undefined): void {
  const lastId = Number(req.headers['last-event-id'])
  let lastSent = Number.isInteger(lastId) && lastId >= 0 ? lastId : since ?? events.list(profile, { limit: 0 }).lastSeq
  reply.hijack()
  const res = reply.raw
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    'x-accel-buffering': 'no'
  })
  res.write('retry: 2000\n\n')
  let closed = false
  const send = (e: SessionEvent): void => {
    if (closed || e.seq <= lastSent) return
    lastSent = e.seq
    res.write(`id: ${e.seq}\ndata: ${JSON.stringify(e)}\n\n`)
    if (res.writableLength > MAX_BUFFERED) cleanup(true)
  }
  const unsubscribe = events.subscribe(profile, send)
  const heartbeat = setInterval(() => { if (!closed) res.write(': ping\n\n') }, HEARTBEAT_MS)
  heartbeat.unref()
  const cleanup = (end: boolean): void => {
    if (closed) return
    closed = true
    unsubscribe()
    clearInterval(heartbeat)
    if (end) res.end()
  }
  req.raw.once('close', () => cleanup(false))
  res.once('close', () => cleanup(false))
  for (;;) {
    const page = events.list(profile, { since: lastSent, limit: 500 })
    if (page.events.length === 0) break
    for (const e of page.events) send(e)
    if (closed) break
  }
}
