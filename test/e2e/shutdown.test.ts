/**
 * SIGTERM/SIGINT: stop accepting, let in-flight requests finish within
 * limits.shutdownTimeoutMs, close tunnels and WebSockets, flush the jars,
 * exit 0.
 */
import net from 'node:net'
import t from 'tap'
import { adminGet, cleanup, curl, startProxy, startUpstream, tempDir } from '../helpers/proxy.js'
import { connectRaw, sleep } from '../helpers/raw-client.js'

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  t.test(`${signal}: the in-flight request finishes, its cookie is on disk, exit 0`, async (t) => {
    let arrived!: () => void
    const requested = new Promise<void>((resolve) => { arrived = resolve })
    const up = await startUpstream((req, res) => {
      if (req.url === '/slow') {
        arrived()
        setTimeout(() => { res.writeHead(200, { 'set-cookie': 'slow=done; Path=/; Max-Age=3600' }); res.end('finished') }, 1500)
      } else {
        res.end('ok')
      }
    })
    const echo = net.createServer((s) => { s.on('error', () => {}); s.pipe(s) })
    await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve))
    const echoPort = (echo.address() as net.AddressInfo).port
    const dataDir = tempDir()
    const proxy = await startProxy({ dataDir, args: ['--no-intercept', '--connect-port', String(echoPort)], config: { limits: { shutdownTimeoutMs: 10000 } } })
    t.teardown(async () => { await up.close(); await new Promise<void>((resolve) => echo.close(() => resolve())); cleanup(dataDir) })

    // An open tunnel, which the shutdown must close rather than wait for.
    const tunnel = await connectRaw(proxy.port)
    tunnel.write(`CONNECT 127.0.0.1:${echoPort} HTTP/1.1\r\nHost: x\r\n\r\n`)
    await new Promise((resolve) => tunnel.once('data', resolve))
    const tunnelClosed = new Promise<void>((resolve) => tunnel.once('close', () => resolve()))

    const slow = curl(['-x', `http://127.0.0.1:${proxy.port}`, `${up.origin}/slow`])
    await requested
    const exited = new Promise<number | null>((resolve) => proxy.proc.once('exit', (code) => resolve(code)))
    proxy.proc.kill(signal)
    await sleep(300)
    const refused = await curl(['-x', `http://127.0.0.1:${proxy.port}`, `${up.origin}/new`])
    t.not(refused.exitCode, 0, 'no new connections once shutting down')
    const r = await slow
    t.equal(r.status, 200, 'the in-flight request got its response')
    t.equal(r.stdout, 'finished')
    await tunnelClosed
    t.pass('the tunnel was closed')
    t.equal(await exited, 0, 'exit status 0')
    t.ok(proxy.output.some((l) => l.includes('"msg":"stopped"')), 'logged and flushed')

    const again = await startProxy({ dataDir })
    t.teardown(async () => { await again.stop() })
    const cookies = await adminGet(again, '/_session/profiles/default/cookies')
    t.match(cookies.body, /"slow"/, 'the cookie of the in-flight response survived the restart')
  })
}

t.test('shutdownTimeoutMs bounds the wait for a request that does not finish', async (t) => {
  const up = await startUpstream(() => { /* never answers */ })
  const proxy = await startProxy({ config: { limits: { shutdownTimeoutMs: 500 } } })
  t.teardown(async () => { await up.close(); cleanup(proxy.dataDir) })
  const stuck = curl(['-x', `http://127.0.0.1:${proxy.port}`, `${up.origin}/never`])
  while (up.requests.length === 0) await sleep(50)
  const code = await proxy.stop()
  t.equal(code, 0, 'still a clean exit')
  t.ok(proxy.output.some((l) => l.includes('"cut":1')), 'the cut request is reported')
  const r = await stuck
  t.not(r.status, 200)
})

t.test('an open admin event stream is closed at shutdown, not waited for', async (t) => {
  const proxy = await startProxy({ config: { limits: { shutdownTimeoutMs: 30000 } } })
  t.teardown(() => cleanup(proxy.dataDir))
  const s = await connectRaw(proxy.port)
  let got = ''
  s.on('data', (c: Buffer) => { got += c.toString('latin1') })
  const closed = new Promise<void>((resolve) => s.once('close', () => resolve()))
  s.write('GET /_session/profiles/default/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n')
  while (!got.includes('\r\n\r\n')) await sleep(50)
  t.match(got, /^HTTP\/1\.1 200/)
  t.equal(await proxy.stop(), 0)
  await closed
  t.ok(proxy.output.some((l) => l.includes('"cut":0')), 'nothing was left to cut: the stream did not hold the shutdown')
})
