/**
 * Plain tunnels to a host that never answers the SYN time out at
 * pool.connectTimeoutMs (504), and a CONNECT or upgrade that arrives while
 * the proxy drains is refused with 503 SP_SHUTTING_DOWN.
 */
import net from 'node:net'
import { spawn } from 'node:child_process'
import t from 'tap'
import { cleanup, startProxy, startUpstream } from '../helpers/proxy.js'
import { connectRaw, readResponse, sleep } from '../helpers/raw-client.js'

/**
 * A loopback port that drops SYNs: a listener (backlog 0) that never accepts,
 * its accept queue filled, so Linux drops further SYNs as for a black-holed host.
 */
async function blackHole (): Promise<{ port: number, close: () => Promise<void> }> {
  const py = spawn('python3', ['-c', [
    'import socket, sys, time',
    's = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(0)',
    'print(s.getsockname()[1], flush=True)',
    'time.sleep(120)'
  ].join('\n')], { stdio: ['ignore', 'pipe', 'inherit'] })
  const port = await new Promise<number>((resolve, reject) => {
    py.stdout.once('data', (c: Buffer) => resolve(Number(c.toString().trim())))
    py.once('error', reject)
  })
  const fillers: net.Socket[] = []
  // Fill the accept queue; the later connects hang, which is what we want.
  for (let i = 0; i < 3; i++) {
    const s = net.connect({ port, host: '127.0.0.1' })
    s.on('error', () => {})
    fillers.push(s)
  }
  await sleep(300)
  return {
    port,
    close: async () => {
      for (const s of fillers) s.destroy()
      py.kill('SIGKILL')
      await new Promise((resolve) => py.once('exit', resolve))
    }
  }
}

t.test('a plain tunnel to a black-holed host answers 504 SP_UPSTREAM_CONNECT_TIMEOUT at pool.connectTimeoutMs', async (t) => {
  const hole = await blackHole()
  const proxy = await startProxy({ args: ['--no-intercept', '--connect-port', String(hole.port)], config: { pool: { connectTimeoutMs: 800 } } })
  t.teardown(async () => { await proxy.stop(); await hole.close(); cleanup(proxy.dataDir) })
  const s = await connectRaw(proxy.port)
  s.write(`CONNECT 127.0.0.1:${hole.port} HTTP/1.1\r\nHost: 127.0.0.1:${hole.port}\r\n\r\n`)
  const r = await readResponse(s, 20_000)
  s.destroy()
  t.equal(r.status, 504)
  t.equal(r.headers['x-session-proxy-error'], 'SP_UPSTREAM_CONNECT_TIMEOUT')
})

for (const kind of ['CONNECT', 'upgrade'] as const) {
  t.test(`a ${kind} whose head completes while the proxy drains gets 503 SP_SHUTTING_DOWN`, async (t) => {
    let arrived!: () => void
    const requested = new Promise<void>((resolve) => { arrived = resolve })
    const up = await startUpstream((_req, res) => {
      arrived()
      setTimeout(() => { res.end('finished') }, 2500)
    })
    const proxy = await startProxy({ args: ['--no-intercept', '--connect-port', String(up.port)], config: { limits: { shutdownTimeoutMs: 10000 } } })
    t.teardown(async () => { await proxy.stop(); await up.close(); cleanup(proxy.dataDir) })
    // An in-flight request keeps the proxy draining.
    const slow = await connectRaw(proxy.port)
    slow.write(`GET ${up.origin}/slow HTTP/1.1\r\nHost: 127.0.0.1:${up.port}\r\n\r\n`)
    const slowDone = readResponse(slow, 20_000)
    await requested
    // A connection whose head is under way when the signal comes.
    const late = await connectRaw(proxy.port)
    late.write(kind === 'CONNECT' ? `CONNECT 127.0.0.1:${up.port} HTTP/1.1\r\n` : `GET ${up.origin}/ws HTTP/1.1\r\n`)
    await sleep(200)
    proxy.proc.kill('SIGTERM')
    await sleep(300)
    late.write(kind === 'CONNECT'
      ? `Host: 127.0.0.1:${up.port}\r\n\r\n`
      : `Host: 127.0.0.1:${up.port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`)
    const r = await readResponse(late, 15_000)
    late.destroy()
    t.equal(r.status, 503)
    t.equal(r.headers['x-session-proxy-error'], 'SP_SHUTTING_DOWN')
    t.equal((await slowDone).status, 200, 'the in-flight request still finished')
    slow.destroy()
  })
}
