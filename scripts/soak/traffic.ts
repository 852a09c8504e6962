/**
 * The soak's traffic kinds (see scripts/soak.mjs): each is a set of bounded
 * loops that stop at the deadline or when the proxy died, and count every
 * attempt under an outcome (status code, "aborted", an error code...).
 */
import { spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import http from 'node:http'
import net from 'node:net'

export interface KindStats { attempts: number, ok: number, outcomes: Record<string, number> }

interface Ctx {
  proxy: { url: string, port: number }
  deadline: number
  isDead: () => boolean
  caFile: string
  caPem: string
  ProxyAgent: new (opts: Record<string, unknown>) => { close: () => Promise<void> }
  openWs: (url: string, dispatcher?: unknown, headers?: Record<string, string>) => Promise<{ next: () => Promise<string | Buffer>, send: (d: string) => void, close: () => Promise<number> }>
  springs: Array<{ origin: string, log: unknown[], invalidateAll: () => void, rotateCsrf: () => void }>
  wsUp: { port: number, handshakes: unknown[] }
  rotating: { origin: string, port: number, requests: unknown[] }
  tls: { port: number, requests: unknown[] }
  enabled: string[]
}

const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))
const errCode = (err: unknown): string => (err as NodeJS.ErrnoException).code ?? (err as Error).name ?? 'error'

export async function traffic (ctx: Ctx): Promise<Record<string, KindStats>> {
  const stats: Record<string, KindStats> = {}
  const record = (kind: string, outcome: string, ok: boolean): void => {
    const s = stats[kind] ??= { attempts: 0, ok: 0, outcomes: {} }
    s.attempts++
    if (ok) s.ok++
    s.outcomes[outcome] = (s.outcomes[outcome] ?? 0) + 1
  }
  const running = (): boolean => Date.now() < ctx.deadline && !ctx.isDead()
  const port = ctx.proxy.port
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 })

  /** One request through the proxy (absolute form); `abortAfterMs` leaves after that long. */
  const proxied = async (url: string, profile: string, opts: { method?: string, body?: string, headers?: Record<string, string>, abortAfterMs?: number, keepAlive?: boolean } = {}): Promise<{ status: number, body: string } | { error: string }> =>
    await new Promise((resolve) => {
      const headers: Record<string, string> = { host: new URL(url).host, 'x-session-profile': profile, ...opts.headers }
      if (opts.body !== undefined) headers['content-length'] = String(Buffer.byteLength(opts.body))
      const req = http.request({ host: '127.0.0.1', port, method: opts.method ?? 'GET', path: url, headers, agent: opts.keepAlive === false ? false : agent, timeout: 30_000 }, (res) => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => { if (chunks.length < 64) chunks.push(c) })
        res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(chunks).toString('utf8') }))
        res.on('error', (err) => resolve({ error: errCode(err) }))
      })
      req.on('error', (err) => resolve({ error: errCode(err) }))
      req.on('timeout', () => req.destroy(new Error('client timeout')))
      if (opts.abortAfterMs !== undefined) setTimeout(() => { req.destroy(); resolve({ error: 'aborted' }) }, opts.abortAfterMs)
      req.end(opts.body)
    })
  const outcome = (r: { status: number } | { error: string }): string => 'status' in r ? String(r.status) : r.error

  /** A raw socket to the proxy; resolves with what came back once `act` is done with it. */
  const raw = async (act: (s: net.Socket, firstData: Promise<Buffer>) => Promise<void>): Promise<string> =>
    await new Promise((resolve) => {
      const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true })
      let data = Buffer.alloc(0)
      let first: (b: Buffer) => void = () => {}
      const firstData = new Promise<Buffer>((resolve) => { first = resolve })
      s.on('error', () => {})
      s.on('data', (c: Buffer) => { data = Buffer.concat([data, c]).subarray(0, 4096); first(data) })
      s.on('end', () => first(data))
      s.on('close', () => { first(data); resolve(/^HTTP\/1\.\d (\d{3})/.exec(data.toString('latin1'))?.[1] ?? (data.length === 0 ? 'no answer' : 'garbage')) })
      s.on('connect', () => { act(s, firstData).catch(() => {}).finally(() => { if (!s.destroyed) s.destroy() }) })
    })
  const within = async <T>(p: Promise<T>, ms: number): Promise<T | undefined> => await Promise.race([p, sleep(ms).then(() => undefined)])

  const loops: Array<Promise<void>> = []
  const loop = (kind: string, n: number, body: (i: number, iter: number) => Promise<void>, pauseMs = 0): void => {
    if (!ctx.enabled.includes(kind)) return
    for (let i = 0; i < n; i++) {
      loops.push((async () => {
        for (let iter = 0; running(); iter++) {
          try { await body(i, iter) } catch (err) { record(kind, `threw ${errCode(err)}`, false); await sleep(100) }
          if (pauseMs > 0) await sleep(pauseMs)
        }
      })())
    }
  }
  // Fixture bookkeeping grows per request: keep the soak's own memory flat.
  const trim = setInterval(() => {
    for (const s of ctx.springs) s.log.length = 0
    ctx.wsUp.handshakes.length = 0
    ctx.rotating.requests.length = 0
    ctx.tls.requests.length = 0
  }, 5000)

  // plain: rotating cookies over 50 profiles, keep-alive.
  loop('plain', 4, async (i, iter) => {
    const r = await proxied(`${ctx.rotating.origin}/p/${iter % 7}`, `rot-${(i * 13 + iter) % 50}`)
    record('plain', outcome(r), 'status' in r && r.status === 200)
  })

  // login: autopilot profiles; the server forgets sessions and tokens every 10 s.
  let relogins: NodeJS.Timeout | undefined
  if (ctx.enabled.includes('login')) relogins = setInterval(() => { for (const s of ctx.springs) { s.invalidateAll(); s.rotateCsrf() } }, 10_000)
  loop('login', 2, async (i, iter) => {
    const profile = `login-${(i + iter * 2) % 4}`
    const s = ctx.springs[(i + iter * 2) % 4 % 2]!
    if (iter % 2 === 0) {
      const r = await proxied(`${s.origin}/api/me`, profile)
      record('login', `me ${outcome(r)}`, 'status' in r && r.status === 200 && /"user":"(alice|bob)"/.test(r.body))
    } else {
      const r = await proxied(`${s.origin}/api/items`, profile, { method: 'POST', body: JSON.stringify({ n: iter }), headers: { 'content-type': 'application/json' } })
      record('login', `post ${outcome(r)}`, 'status' in r && r.status === 201)
    }
  })

  // websocket: clean sessions through ProxyAgent (absolute form), abrupt ones on a raw socket.
  const wsAgent = ctx.enabled.includes('websocket') ? new ctx.ProxyAgent({ uri: ctx.proxy.url, proxyTunnel: false }) : null
  loop('websocket', 1, async (_i, iter) => {
    if (iter % 3 === 2) {
      const key = randomBytes(16).toString('base64')
      const r = await raw(async (s, first) => {
        s.write(`GET http://127.0.0.1:${ctx.wsUp.port}/ws HTTP/1.1\r\nHost: 127.0.0.1:${ctx.wsUp.port}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\nX-Session-Profile: ws-${iter % 5}\r\n\r\n`)
        await within(first, 5000)
        s.write(Buffer.from([0x81, 0xfe, 0x10, 0x00])) // a 4 KiB text frame header, then gone
        s.resetAndDestroy()
      })
      record('websocket', `abrupt ${r}`, r === '101')
      return
    }
    const ws = await ctx.openWs(`ws://127.0.0.1:${ctx.wsUp.port}/ws`, wsAgent, { 'X-Session-Profile': `ws-${iter % 5}` })
    const hello = await within(ws.next(), 5000)
    ws.send(`m${iter}`)
    const echo = await within(ws.next(), 5000)
    const code = await within(ws.close(), 5000)
    record('websocket', `clean ${String(code)}`, hello === 'hello' && echo === `echo:m${iter}` && code === 1000)
  }, 50)

  // tunnel: intercepted https with curl --cacert (the proxy's CA) and undici's ProxyAgent.
  loop('tunnel', 1, async (_i, iter) => {
    const code = await new Promise<string>((resolve) => {
      const c = spawn('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '15', '--cacert', ctx.caFile, '-x', `http://tls-${iter % 5}@127.0.0.1:${port}`, `https://127.0.0.1:${ctx.tls.port}/c/${iter}`], { stdio: ['ignore', 'pipe', 'ignore'] })
      let out = ''
      c.stdout.on('data', (d: Buffer) => { out += d.toString() })
      c.on('close', (status) => resolve(status === 0 ? out : `curl exit ${String(status)}`))
      c.on('error', () => resolve('curl missing'))
    })
    record('tunnel', `curl ${code}`, code === '200')
  }, 200)
  const tunnelAgents = ctx.enabled.includes('tunnel') ? [0, 1, 2].map((n) => new ctx.ProxyAgent({ uri: `http://tlsu-${n}@127.0.0.1:${port}`, requestTls: { ca: ctx.caPem } })) : []
  loop('tunnel', 2, async (i, iter) => {
    const { fetch } = await import('undici')
    try {
      const r = await fetch(`https://127.0.0.1:${ctx.tls.port}/u/${iter}`, { dispatcher: tunnelAgents[(i + iter) % 3] as never, signal: AbortSignal.timeout(15_000) })
      await r.arrayBuffer()
      record('tunnel', `undici ${r.status}`, r.status === 200)
    } catch (err) {
      record('tunnel', `undici ${errCode((err as Error).cause ?? err)}`, false)
    }
  })

  // abort: clients that leave mid-download or while waiting, plain and managed path.
  loop('abort', 2, async (i, iter) => {
    const profile = i === 0 ? `abort-${iter % 5}` : 'managed-abort'
    const slow = iter % 2 === 0
    const r = await proxied(`${ctx.rotating.origin}/${slow ? 'slow' : 'delay'}`, profile, { abortAfterMs: slow ? 100 + (iter % 5) * 100 : 150, keepAlive: false })
    record('abort', `${i === 0 ? 'plain' : 'managed'} ${outcome(r)}`, 'error' in r && r.error === 'aborted')
  }, 20)

  // refusal: refused CONNECT / upgrade, then the client resets (what curl and wget do).
  loop('refusal', 1, async (_i, iter) => {
    const shapes = [
      'CONNECT 127.0.0.1:12345 HTTP/1.1\r\nHost: 127.0.0.1:12345\r\n\r\n',
      'CONNECT example.test HTTP/1.1\r\n\r\n',
      'GET /_session/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n',
      'CONNECT localhost:443 HTTP/1.1\r\nX-Session-Profile: ../x\r\n\r\n'
    ]
    const r = await raw(async (s, first) => { s.write(shapes[iter % shapes.length]!); await within(first, 5000); s.resetAndDestroy() })
    record('refusal', r, /^(400|403|501)$/.test(r))
  }, 100)

  // hostile: at most 24 held at once; each lets go by itself.
  let held = 0
  const hold = async (shape: string, act: (s: net.Socket, first: Promise<Buffer>) => Promise<void>, expected: RegExp): Promise<void> => {
    held++
    try {
      const r = await raw(act)
      record('hostile', `${shape} ${r}`, expected.test(r))
    } finally { held-- }
  }
  loop('hostile', 1, async (_i, iter) => {
    if (held >= 24) { await sleep(200); return }
    const target = `http://127.0.0.1:${ctx.rotating.port}/h/${iter}`
    const shape = iter % 4
    if (shape === 0) {
      void hold('half-head', async (s, first) => { s.write(`GET ${target} HTTP/1.1\r\nHost: x\r\n`); await within(first, 6000) }, /.*/)
    } else if (shape === 1) {
      void hold('slowloris', async (s, first) => {
        const text = `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-A: ${'a'.repeat(40)}\r\n\r\n`
        let gotAnswer = false
        void first.then(() => { gotAnswer = true })
        for (let k = 0; k < text.length && k < 20 && !gotAnswer && !s.destroyed; k++) { s.write(text[k]!); await sleep(1000) }
      }, /.*/)
    } else if (shape === 2) {
      void hold('short-body', async (s, first) => { s.write(`POST ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n0123456789`); await within(first, 10_000) }, /.*/)
    } else {
      void hold('garbage', async (s, first) => { s.write(randomBytes(200)); s.end(); await within(first, 3000) }, /^(400|no answer)$/)
    }
    await sleep(150)
  })

  // admin: health, metrics, listings, cookies.txt imports.
  loop('admin', 1, async (_i, iter) => {
    const base = ctx.proxy.url
    const which = iter % 5
    let status = 0
    try {
      if (which === 0) status = (await fetch(`${base}/_session/health`)).status
      else if (which === 1) status = (await fetch(`${base}/_session/metrics`).then(async (r) => { await r.arrayBuffer(); return r })).status
      else if (which === 2) status = (await fetch(`${base}/_session/profiles`).then(async (r) => { await r.arrayBuffer(); return r })).status
      else if (which === 3) status = (await fetch(`${base}/_session/profiles/rot-${iter % 50}/cookies`).then(async (r) => { await r.arrayBuffer(); return r })).status
      else {
        const lines = Array.from({ length: 50 }, (_, k) => `127.0.0.1\tFALSE\t/\tFALSE\t0\timp${k}\tv${iter}`).join('\n') + '\n'
        status = (await fetch(`${base}/_session/profiles/import-${iter % 10}/cookies.txt`, { method: 'PUT', body: lines }).then(async (r) => { await r.arrayBuffer(); return r })).status
      }
      record('admin', String(status), status === 200 || (which === 3 && status === 404))
    } catch (err) {
      record('admin', errCode((err as Error).cause ?? err), false)
    }
  }, 250)

  await Promise.all(loops)
  // Let the held hostile sockets go by themselves (each is bounded).
  for (let k = 0; k < 40 && held > 0; k++) await sleep(500)
  clearInterval(trim)
  clearInterval(relogins)
  agent.destroy()
  await Promise.all([...(wsAgent === null ? [] : [wsAgent.close()]), ...tunnelAgents.map(async (a) => await a.close())])
  return stats
}
