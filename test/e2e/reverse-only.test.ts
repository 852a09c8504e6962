/** --reverse is a sidecar, not an open forward proxy, unless --reverse-forward says so. */
import t from 'tap'
import { cleanup, curl, echoCookies, startProxy, startUpstream } from '../helpers/proxy.js'
import { sendThenReset } from '../helpers/raw-client.js'

t.test('reverse mode refuses absolute-form requests to other hosts and CONNECT with 403 SP_REVERSE_ONLY', async (t) => {
  const base = await startUpstream(echoCookies())
  const other = await startUpstream(echoCookies())
  const proxy = await startProxy({ args: ['--reverse', base.origin, '--connect-port', String(other.port)] })
  t.teardown(async () => { await proxy.stop(); await base.close(); await other.close(); cleanup(proxy.dataDir) })

  const sidecar = await curl([`http://127.0.0.1:${proxy.port}/items`])
  t.equal(sidecar.status, 200, 'origin-form requests go to the reverse base')

  const forward = await curl(['-i', '-x', `http://127.0.0.1:${proxy.port}`, `${other.origin}/secret`])
  t.equal(forward.status, 403)
  t.match(forward.stdout, /x-session-proxy-error: SP_REVERSE_ONLY/)
  t.match(forward.stdout, /reverse mode/)
  t.equal(other.requests.length, 0, 'nothing reached the other host')

  const connect = await sendThenReset(proxy.port, `CONNECT 127.0.0.1:${other.port} HTTP/1.1\r\nHost: 127.0.0.1:${other.port}\r\n\r\n`)
  t.equal(connect.status, 403)
  t.equal(connect.headers['x-session-proxy-error'], 'SP_REVERSE_ONLY')
  t.match(connect.body, /reverseForward/)

  const ws = await sendThenReset(proxy.port, `GET ${other.origin}/ws HTTP/1.1\r\nHost: 127.0.0.1:${other.port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n`)
  t.equal(ws.status, 403, 'absolute-form upgrades too')
  t.equal(ws.headers['x-session-proxy-error'], 'SP_REVERSE_ONLY')
  t.equal(other.requests.length, 0)
})

t.test('--reverse-forward serves both', async (t) => {
  const base = await startUpstream(echoCookies())
  const other = await startUpstream(echoCookies())
  const proxy = await startProxy({ args: ['--reverse', base.origin, '--reverse-forward'] })
  t.teardown(async () => { await proxy.stop(); await base.close(); await other.close(); cleanup(proxy.dataDir) })
  t.equal((await curl([`http://127.0.0.1:${proxy.port}/items`])).status, 200)
  t.equal((await curl(['-x', `http://127.0.0.1:${proxy.port}`, `${other.origin}/x`])).status, 200)
  t.equal(other.requests.length, 1)
})
