// The floor: a bare Node forward proxy, node:http in front of undici's
// dispatch with raw headers, modelled on undici's docs/examples/proxy/proxy.js.
// No jar, no log, no profile: what any Node proxy pays per request on this
// machine. session-proxy's cost is reported against it.
// Usage: node bench/reference/bare-proxy.mjs PORT
import http from 'node:http'
import { Agent } from 'undici'

const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade'])
const agent = new Agent({ keepAliveTimeout: 4000, connections: 128 })
const VIA = '1.1 bare-proxy'

const server = http.createServer((req, res) => {
  let url
  try { url = new URL(req.url) } catch { res.writeHead(400).end(); return }
  const headers = []
  const raw = req.rawHeaders
  for (let i = 0; i < raw.length; i += 2) {
    if (!HOP.has(raw[i].toLowerCase())) headers.push(raw[i], raw[i + 1])
  }
  headers.push('via', VIA)
  const hasBody = req.headers['content-length'] !== undefined || req.headers['transfer-encoding'] !== undefined
  agent.dispatch({ origin: url.origin, path: url.pathname + url.search, method: req.method, headers, body: hasBody ? req : null }, {
    onConnect (abort) { res.once('close', () => { if (!res.writableFinished) abort() }) },
    onHeaders (status, rawHeaders, resume, statusText) {
      const out = []
      for (let i = 0; i < rawHeaders.length; i += 2) {
        const name = rawHeaders[i].toString('latin1')
        if (!HOP.has(name.toLowerCase())) out.push(name, rawHeaders[i + 1].toString('latin1'))
      }
      out.push('via', VIA)
      res.on('drain', resume)
      res.writeHead(status, statusText || undefined, out)
      return true
    },
    onData (chunk) { return res.write(chunk) },
    onComplete () { res.end() },
    onError () { if (res.headersSent) res.destroy(); else res.writeHead(502).end() }
  })
})
server.keepAliveTimeout = 60_000
server.on('clientError', (_err, socket) => socket.destroy())
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  console.log(JSON.stringify({ msg: 'listening', url: `http://127.0.0.1:${server.address().port}` }))
})
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0))
