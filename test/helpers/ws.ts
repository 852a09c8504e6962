/**
 * A WebSocket echo upstream (the `ws` package's server on a real http or
 * https server) that records each handshake and sets a cookie on the 101,
 * and a small promise-based client over undici's WebSocket.
 */
import type http from 'node:http'
import { WebSocket as Client, type Dispatcher } from 'undici'
import { WebSocketServer } from 'ws'
import { echoCookies, startUpstream, type Upstream } from './proxy.js'
import { startHttpsUpstream, type TestCa } from './tls.js'

export interface WsUpstream extends Upstream {
  /** Request headers of each WebSocket handshake, newest last. */
  handshakes: http.IncomingHttpHeaders[]
}

/**
 * Ordinary requests get echoCookies; upgrades are accepted with
 * `Set-Cookie: ws=<handshake count>`, greet with "hello", and echo every message back
 * prefixed with "echo:" (binary frames unchanged).
 */
export async function startWsUpstream (ca?: TestCa): Promise<WsUpstream> {
  const up = ca === undefined ? await startUpstream(echoCookies()) : await startHttpsUpstream(echoCookies(), ca)
  const wss = new WebSocketServer({ noServer: true })
  const handshakes: http.IncomingHttpHeaders[] = []
  wss.on('headers', (headers) => { headers.push(`Set-Cookie: ws=${handshakes.length}; Path=/`) })
  up.server.on('upgrade', (req: http.IncomingMessage, socket, head: Buffer) => {
    handshakes.push(req.headers)
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.send('hello')
      ws.on('message', (data, isBinary) => ws.send(isBinary ? data : `echo:${String(data)}`, { binary: isBinary }))
    })
  })
  const close = up.close
  return {
    ...up,
    handshakes,
    close: async () => {
      for (const c of wss.clients) c.terminate()
      wss.close()
      await close()
    }
  }
}

export interface WsSession {
  /** Resolves with the next message (text as string, binary as Buffer). */
  next: () => Promise<string | Buffer>
  send: (data: string | Buffer) => void
  close: () => Promise<number>
}

export async function openWs (url: string, dispatcher?: Dispatcher, headers?: Record<string, string>): Promise<WsSession> {
  const ws = new Client(url, { dispatcher, headers })
  ws.binaryType = 'arraybuffer'
  const queue: Array<string | Buffer> = []
  const waiting: Array<(m: string | Buffer) => void> = []
  ws.addEventListener('message', (ev) => {
    const m = typeof ev.data === 'string' ? ev.data : Buffer.from(ev.data as ArrayBuffer)
    const w = waiting.shift()
    if (w !== undefined) w(m)
    else queue.push(m)
  })
  await new Promise<void>((resolve, reject) => {
    ws.addEventListener('open', () => resolve())
    ws.addEventListener('error', (ev) => reject(new Error(`WebSocket to ${url} failed: ${String((ev as { message?: string }).message ?? 'error')}`)))
  })
  return {
    next: async () => {
      const m = queue.shift()
      if (m !== undefined) return m
      return await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no message within 5 s')), 5000)
        waiting.push((msg) => { clearTimeout(timer); resolve(msg) })
      })
    },
    send: (data) => ws.send(data),
    close: async () => await new Promise<number>((resolve) => {
      ws.addEventListener('close', (ev) => resolve(ev.code))
      ws.close(1000, 'done')
    })
  }
}
