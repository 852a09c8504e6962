/** Raw-socket clients for hostile-client tests: exact bytes out, a response head in, then a reset. */
import net from 'node:net'

export interface RawResponse {
  status: number
  head: string
  body: string
  /** header name (lower case) to value */
  headers: Record<string, string>
}

export function parseHead (text: string): RawResponse {
  const end = text.indexOf('\r\n\r\n')
  const head = end === -1 ? text : text.slice(0, end)
  const lines = head.split('\r\n')
  const headers: Record<string, string> = {}
  for (const l of lines.slice(1)) {
    const c = l.indexOf(':')
    if (c > 0) headers[l.slice(0, c).trim().toLowerCase()] = l.slice(c + 1).trim()
  }
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(lines[0] ?? '')?.[1] ?? 0), head, body: end === -1 ? '' : text.slice(end + 4), headers }
}

export function connectRaw (port: number, host = '127.0.0.1', localAddress?: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host, localAddress })
    s.once('connect', () => { s.off('error', reject); s.on('error', () => {}); resolve(s) })
    s.once('error', reject)
  })
}

/** Reads until a complete response (head plus content-length body) or the peer closes. */
export function readResponse (s: net.Socket, timeoutMs = 15_000): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    let buf = ''
    const done = (): void => {
      clearTimeout(timer)
      s.off('data', onData)
      resolve(parseHead(buf))
    }
    const onData = (c: Buffer): void => {
      buf += c.toString('latin1')
      const end = buf.indexOf('\r\n\r\n')
      if (end === -1) return
      const r = parseHead(buf)
      const len = r.headers['content-length']
      if (len !== undefined && Buffer.byteLength(r.body, 'latin1') >= Number(len)) done()
    }
    const timer = setTimeout(() => { s.destroy(); reject(new Error(`no complete response in ${timeoutMs} ms; got ${JSON.stringify(buf.slice(0, 300))}`)) }, timeoutMs)
    s.on('data', onData)
    s.once('close', done)
  })
}

/** Sends `bytes`, reads the answer, then resets the connection (RST), as a hostile client would. */
export async function sendThenReset (port: number, bytes: string | Buffer): Promise<RawResponse> {
  const s = await connectRaw(port)
  s.write(bytes)
  const r = await readResponse(s)
  // On a socket that already closed, resetAndDestroy leaves a handle that keeps the test process alive.
  if (!s.destroyed && s.readyState === 'open') s.resetAndDestroy()
  else s.destroy()
  return r
}

export async function sleep (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}
