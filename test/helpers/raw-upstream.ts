/**
 * A tiny upstream on a raw node:net server that writes exact bytes: for
 * responses a real HTTP server would never send (broken framing, odd status
 * lines, connections closed on reuse).
 */
import net from 'node:net'

export interface RawRequest {
  /** The request head as received (latin1), up to and including the blank line. */
  head: string
  /** 0 for the first request on its connection, 1 for the second, ... */
  indexOnConnection: number
  /** Which connection (0-based, in accept order). */
  connection: number
}

/** Answers one request on `socket`; may write, end or destroy it. */
export type RawResponder = (socket: net.Socket, request: RawRequest) => void

export interface RawUpstream {
  port: number
  origin: string
  /** Every request head received, in order. */
  requests: RawRequest[]
  /** Connections accepted so far. */
  connections: () => number
  close: () => Promise<void>
}

export async function startRawUpstream (respond: RawResponder): Promise<RawUpstream> {
  const requests: RawRequest[] = []
  const sockets = new Set<net.Socket>()
  let accepted = 0
  const server = net.createServer((socket) => {
    const connection = accepted++
    sockets.add(socket)
    socket.on('error', () => {})
    socket.once('close', () => sockets.delete(socket))
    let buf = ''
    let index = 0
    socket.on('data', (chunk: Buffer) => {
      buf += chunk.toString('latin1')
      let end
      // Requests in these tests carry no body: each head is one request.
      while ((end = buf.indexOf('\r\n\r\n')) !== -1) {
        const request = { head: buf.slice(0, end + 4), indexOnConnection: index++, connection }
        buf = buf.slice(end + 4)
        requests.push(request)
        respond(socket, request)
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as net.AddressInfo).port
  return {
    port,
    origin: `http://127.0.0.1:${port}`,
    requests,
    connections: () => accepted,
    close: async () => {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    }
  }
}

/** Writes `bytes` (latin1) as the whole answer. */
export function answer (bytes: string): RawResponder {
  return (socket) => { socket.write(Buffer.from(bytes, 'latin1')) }
}
