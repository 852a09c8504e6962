// The benchmark's upstream when nginx is not installed: the same routes as
// upstream/nginx.conf. Usage: node node-upstream.mjs PORT COOKIES SMALL_COOKIES
import http from 'node:http'
import crypto from 'node:crypto'

const port = Number(process.argv[2])
const seedCount = Number(process.argv[3] ?? 20)
const smallCount = Number(process.argv[4] ?? 5)
const seed = (n) => {
  const v = crypto.randomUUID().replaceAll('-', '')
  return Array.from({ length: n }, (_, i) => `s${i}=${v}; Path=/; Max-Age=86400`)
}

const server = http.createServer((req, res) => {
  req.resume()
  const p = req.url.split('?')[0]
  const h = { 'content-type': 'text/plain' }
  if (p === '/') {
    h['set-cookie'] = 'sid=abc; Path=/'
    res.writeHead(200, h).end('ok\n')
  } else if (p === '/rotate') {
    h['set-cookie'] = `rot=${crypto.randomUUID().replaceAll('-', '')}; Path=/`
    res.writeHead(200, h).end('ok\n')
  } else if (p === '/seed' || p === '/seed-small') {
    h['set-cookie'] = seed(p === '/seed' ? seedCount : smallCount)
    res.writeHead(200, h).end('seeded\n')
  } else if (p === '/echo') {
    res.writeHead(200, h).end(`${req.headers.cookie ?? ''}\n`)
  } else {
    res.writeHead(404, h).end('not found\n')
  }
})
server.keepAliveTimeout = 75000
server.headersTimeout = 80000
server.maxRequestsPerSocket = 0
server.listen(port, '127.0.0.1', () => console.log(`listening ${port}`))
process.on('SIGTERM', () => process.exit(0))
process.on('SIGINT', () => process.exit(0))
