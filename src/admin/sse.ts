/**
 * Server-Sent Events for the session event log. A client resumes where it
 * left off with Last-Event-ID (EventSource sends it on reconnect) or
 * ?since=SEQ; the backlog is sent after subscribing, so no event falls in a
 * gap between the two.
 *
 * Slow readers: at most limits.maxAdminStreamBufferBytes is queued for one
 * client (the response's and its socket's buffers). Past that the stream
 * stops writing and, once the client has read it down ('drain'), catches up
 * from the event log, which already holds every event: a burst larger than
 * the limit reaches a reading client whole and in order. A client that
 * stops reading is dropped (the connection destroyed, its buffer freed)
 * when the log no longer holds the next event it is owed, or when it has
 * not read its buffer down for two heartbeat intervals. EventSource then
 * reconnects and resumes from its last id.
 */
import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Logger } from 'pino'
import type { SessionEvent } from '../observe/event-types.js'
import type { SessionEvents } from '../observe/events.js'

export const HEARTBEAT_MS = 15_000
const PAGE = 500

export interface StreamLimits {
  /** Bytes queued for one client before it is written no more until it reads. */
  maxBufferedBytes: number
  log?: Logger
  /** Heartbeat interval (tests shorten it). */
  heartbeatMs?: number
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
  /** Over the limit: nothing more is written until 'drain'. */
  let behind = false
  /** Heartbeats seen while behind. */
  let stalledBeats = 0
  let unsubscribe = (): void => {}
  // eslint-disable-next-line prefer-const -- assigned after cleanup(), which clears it, is defined
  let heartbeat: NodeJS.Timeout | undefined
  const cleanup = (): void => {
    if (closed) return
    closed = true
    unsubscribe()
    clearInterval(heartbeat)
  }
  const drop = (why: string): void => {
    if (closed) return
    limits.log?.warn({ profile, why, bufferedBytes: res.writableLength, limit: limits.maxBufferedBytes, lastSent, client: req.socket.remoteAddress }, 'event stream dropped: the client is not reading (limits.maxAdminStreamBufferBytes)')
    cleanup()
    // end() would queue behind the unread bytes and keep them: destroy frees them.
    res.destroy()
  }
  const write = (chunk: string): void => {
    const ok = res.write(chunk)
    // writableLength counts what the response and its socket hold unsent.
    // Only a refused write is followed by 'drain', so a limit below the
    // stream's high-water mark (16 KiB) acts as that mark.
    if (!ok && res.writableLength > limits.maxBufferedBytes) behind = true
  }
  /**
   * Writes the log from lastSent on until caught up or over the limit. The
   * backlog a client asks for may be partly gone already (it gets what the
   * log holds); events it missed while connected must all still be there.
   */
  const catchUp = (whole: boolean): void => {
    while (!closed && !behind) {
      const page = events.list(profile, { since: lastSent, limit: PAGE })
      if (whole && page.firstSeq > lastSent + 1 && page.lastSeq > lastSent) { drop('the event log no longer holds the events it missed'); return }
      if (page.events.length === 0) return
      for (const e of page.events) {
        if (behind) return
        lastSent = e.seq
        write(`id: ${e.seq}\ndata: ${JSON.stringify(e)}\n\n`)
      }
    }
  }
  const onEvent = (e: SessionEvent): void => {
    if (closed || e.seq <= lastSent) return
    if (behind) {
      // Owed: it comes from the log after 'drain', unless the log has moved past it.
      if (events.list(profile, { limit: 0 }).firstSeq > lastSent + 1) drop('the event log no longer holds the events it missed')
      return
    }
    if (e.seq !== lastSent + 1) { catchUp(true); return }
    lastSent = e.seq
    write(`id: ${e.seq}\ndata: ${JSON.stringify(e)}\n\n`)
  }
  res.on('error', cleanup)
  req.raw.once('close', cleanup)
  res.once('close', cleanup)
  res.on('drain', () => {
    if (closed || !behind || res.writableLength > limits.maxBufferedBytes) return
    behind = false
    stalledBeats = 0
    catchUp(true)
  })
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    'x-accel-buffering': 'no'
  })
  unsubscribe = events.subscribe(profile, onEvent)
  heartbeat = setInterval(() => {
    if (closed) return
    if (behind) {
      if (++stalledBeats >= 2) drop('it has not read for two heartbeat intervals')
      return
    }
    write(': ping\n\n')
  }, limits.heartbeatMs ?? HEARTBEAT_MS)
  heartbeat.unref()
  write('retry: 2000\n\n')
  catchUp(false)
}
