import type { Duplex } from 'node:stream'

/**
 * Joins two sockets with backpressure both ways (pipe pauses the source
 * while the destination's buffer is full); a side whose queue still grows
 * past maxBufferBytes (a peer that does not read while writes go on) is cut.
 */
export function joinSockets (a: Duplex, b: Duplex, maxBufferBytes: number): void {
  const closeBoth = (): void => { a.destroy(); b.destroy() }
  a.on('error', closeBoth)
  b.on('error', closeBoth)
  a.once('close', () => b.destroy())
  b.once('close', () => a.destroy())
  const bound = (from: Duplex, to: Duplex): void => {
    from.on('data', () => { if (to.writableLength > maxBufferBytes) closeBoth() })
  }
  bound(a, b)
  bound(b, a)
  a.pipe(b)
  b.pipe(a)
}
