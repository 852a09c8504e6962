/**
 * Session events for tests: reading the events API, a small
 * Server-Sent Events client over node:http (what EventSource does: Accept
 * header, Last-Event-ID, id/data fields).
 */
import http from 'node:http'
import type { ProxyProcess } from './proxy.js'

export interface Ev {
  seq: number
  type: string
  requestId: number | null
  profile: string
  time: string
  [k: string]: unknown
}

export interface EvPage { profile: string, events: Ev[], lastSeq: number, firstSeq: number }

export async function listEvents (proxy: ProxyProcess, profile = 'default', query = ''): Promise<EvPage> {
  const r = await fetch(`${proxy.url}/_session/profiles/${profile}/events${query}`)
  if (!r.ok) throw new Error(`events: ${r.status} ${await r.text()}`)
  return await r.json() as EvPage
}

/** Events of the profile after `since`, of the given type. */
export async function eventsOf (proxy: ProxyProcess, type: string, profile = 'default', since = 0): Promise<Ev[]> {
  return (await listEvents(proxy, profile, `?since=${since}&limit=1000`)).events.filter((e) => e.type === type)
}

export async function lastSeq (proxy: ProxyProcess, profile = 'default'): Promise<number> {
  return (await listEvents(proxy, profile, '?limit=0')).lastSeq
}

export interface EventStream {
  status: number
  headers: http.IncomingHttpHeaders
  /** Every event received so far, with the SSE id. */
  received: Array<{ id: string, data: Ev }>
  /** Resolves with the first received event (past or future) matching `pred`. */
  next: (pred: (e: Ev) => boolean, timeoutMs?: number) => Promise<Ev>
  close: () => void
}

export async function openEventStream (url: string, headers: Record<string, string> = {}): Promise<EventStream> {
  return await new Promise((resolve, reject) => {
    const req = http.get(url, { headers: { accept: 'text/event-stream', ...headers }, agent: false }, (res) => {
      const received: EventStream['received'] = []
      const waiters: Array<{ pred: (e: Ev) => boolean, resolve: (e: Ev) => void }> = []
      let buf = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        buf += chunk
        let end
        while ((end = buf.indexOf('\n\n')) !== -1) {
          const block = buf.slice(0, end)
          buf = buf.slice(end + 2)
          let id = ''
          let data = ''
          for (const line of block.split('\n')) {
            if (line.startsWith('id: ')) id = line.slice(4)
            else if (line.startsWith('data: ')) data += line.slice(6)
          }
          if (data === '') continue
          const ev = JSON.parse(data) as Ev
          received.push({ id, data: ev })
          for (const w of [...waiters]) {
            if (w.pred(ev)) { waiters.splice(waiters.indexOf(w), 1); w.resolve(ev) }
          }
        }
      })
      res.on('error', () => {})
      resolve({
        status: res.statusCode!,
        headers: res.headers,
        received,
        next: async (pred, timeoutMs = 10_000) => {
          const found = received.find((r) => pred(r.data))
          if (found !== undefined) return found.data
          return await new Promise<Ev>((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`no matching event within ${timeoutMs} ms; got ${received.map((r) => r.data.type).join(', ')}`)), timeoutMs)
            waiters.push({ pred, resolve: (e) => { clearTimeout(timer); resolve(e) } })
          })
        },
        close: () => { req.destroy() }
      })
    })
    req.on('error', reject)
  })
}
