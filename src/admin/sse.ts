/**
 * Server-Sent Events for the session event log. A client resumes where it
 * left off with Last-Event-ID (EventSource sends it on reconnect) or
 * ?since=SEQ; the backlog is sent after subscribing, so no event falls in a
 * gap between the two. A client that stops reading is dropped (the
 * connection destroyed, its buffer freed) once more than
 * limits.maxAdminStreamBufferBytes is queued for it, rather than buffered
 * without bound: it reconnects and resumes from its last id.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import type { SessionEvent } from '../observe/event-types.js'
import type { SessionEvents } from '../observe/events.js'

const HEARTBEAT_MS = 15_000

export interface StreamLimits {
  /** Bytes queued for one client (response and socket buffers) before it is dropped. */
  maxBufferedBytes: number
  log?: Logger
}

export function wantsEventStream (req: FastifyRequest): boolean {
  return (req.headers.accept ?? '').includes('text/event-stream')
}

export function streamEvents (req: FastifyRequest, reply: FastifyReply, events: SessionEvents, profile: string, since: number | undefined, limits: StreamLimits): void {
  const lastId = Number(req.headers['last-event-id'])
  let lastSent = Number.isInteger(lastId) && lastId >= 0 ? lastId : since ?? events.list(profile, { limit: 0 }).lastSeq
  reply.hijack()
  const res = reply.raw
  let closed = false
  let unsubscribe = (): void => {}
  let heartbeat: NodeJS.Timeout | undefined
  const cleanup = (): void => {
    if (closed) return
    closed = true
    unsubscribe()
    clearInterval(heartbeat)
  }
  const write = (chunk: string): void => {
    if (closed) return
    res.write(chunk)
    // writableLength counts what the response and its socket hold unsent.
    if (res.writableLength > limits.maxBufferedBytes) {
      limits.log?.warn({ profile, bufferedBytes: res.writableLength, limit: limits.maxBufferedBytes, client: req.socket.remoteAddress }, 'event stream dropped: the client is not reading (limits.maxAdminStreamBufferBytes)')
      cleanup()
      // end() would queue behind the unread bytes and keep them: destroy frees them.
      res.destroy()
    }
  }
  res.on('error', cleanup)
  req.raw.once('close', cleanup)
  res.once('close', cleanup)
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    'x-accel-buffering': 'no'
  })
  const send = (e: SessionEvent): void => {
    if (closed || e.seq <= lastSent) return
    lastSent = e.seq
    write(`id: ${e.seq}\ndata: ${JSON.stringify(e)}\n\n`)
  }
  unsubscribe = events.subscribe(profile, send)
  heartbeat = setInterval(() => { write(': ping\n\n') }, HEARTBEAT_MS)
  heartbeat.unref()
  write('retry: 2000\n\n')
  for (;;) {
    if (closed) break
    const page = events.list(profile, { since: lastSent, limit: 500 })
    if (page.events.length === 0) break
    for (const e of page.events) send(e)
  }
}
