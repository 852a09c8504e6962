/**
 * docker-compose.example.yml runs as written: each session-proxy service is
 * started from dist/ with the image's ENV (from the Dockerfile), the
 * service's environment and command (the example upstream swapped for a
 * local one), then proxied through and health-checked. The image build itself
 * is covered by dockerfile-replay.test.ts.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { parse } from 'yaml'
import { ENV_VARIABLES } from '../../src/config/load.js'
import { parseDockerfile, parseEnv } from '../helpers/dockerfile.js'
import { pathWithThisNode, startUntilListening } from '../helpers/packaging.js'
import { CLI, ROOT, cleanup, curl, run, startUpstream, tempDir } from '../helpers/proxy.js'
import { startRedis } from '../helpers/redis.js'

interface Service {
  image?: string
  profiles?: string[]
  command?: string[]
  environment?: Record<string, string>
  secrets?: string[]
  healthcheck?: unknown
}

const compose = parse(readFileSync(join(ROOT, 'docker-compose.example.yml'), 'utf8'), { merge: true }) as { services: Record<string, Service>, secrets: Record<string, unknown> }
const imageEnv: Record<string, string> = {}
let lastFrom = -1
const instructions = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'))
instructions.forEach((ins, i) => { if (ins.op === 'FROM') lastFrom = i })
for (const ins of instructions.slice(lastFrom)) if (ins.op === 'ENV') Object.assign(imageEnv, parseEnv(ins.args))

const proxies = Object.entries(compose.services).filter(([, s]) => s.image === 'session-proxy')

t.test('the three layouts are there', async (t) => {
  const profiles = new Set(Object.values(compose.services).flatMap((s) => s.profiles ?? []))
  t.same([...profiles].sort(), ['load', 'replicas', 'sidecar'])
  t.ok(proxies.length >= 4, `${proxies.length} proxy services`)
  const known = new Set(ENV_VARIABLES.map((v) => v.name))
  for (const [name, s] of proxies) {
    for (const key of Object.keys(s.environment ?? {}).filter((k) => k.startsWith('SESSION_PROXY_'))) t.ok(known.has(key), `${name}: ${key} is a known variable`)
  }
})

for (const [name, service] of proxies) {
  t.test(`service ${name} starts with its environment and command and proxies`, async (t) => {
    const dir = tempDir('sp-compose-')
    const upstream = await startUpstream((req, res) => {
      res.writeHead(200, req.url === '/login' ? { 'set-cookie': 'SESSION=c1; Path=/' } : {})
      res.end(`${req.url ?? ''} cookie=${req.headers.cookie ?? 'none'}`)
    })
    t.teardown(() => upstream.close())
    // Docker secrets appear under /run/secrets/NAME.
    const secrets = join(dir, 'secrets')
    mkdirSync(secrets)
    for (const secret of service.secrets ?? []) writeFileSync(join(secrets, secret), `secret-for-${secret}\n`)
    const serviceEnv = Object.fromEntries(Object.entries(service.environment ?? {}).map(([k, v]) => [k, String(v).replaceAll('/run/secrets/', `${secrets}/`)]))
    // The replicas' Redis (service "redis"): a real redis-server on a free loopback port.
    if (serviceEnv.SESSION_PROXY_STORE?.startsWith('redis://redis:') === true) {
      const redis = await startRedis()
      t.teardown(async () => { await redis.stop(); cleanup(redis.dir) })
      serviceEnv.SESSION_PROXY_STORE = serviceEnv.SESSION_PROXY_STORE.replace(/^redis:\/\/redis:6379/, `redis://127.0.0.1:${redis.port}`)
    }
    const env = { PATH: pathWithThisNode(), ...imageEnv, ...serviceEnv, SESSION_PROXY_PORT: '0', SESSION_PROXY_DATA_DIR: join(dir, 'data') }
    const args = (service.command ?? []).map((a) => a === 'https://api.example.com' ? upstream.origin : a)
    const proxy = await startUntilListening([process.execPath, CLI, ...args], { cwd: ROOT, env })
    t.teardown(() => proxy.stop('SIGKILL'))

    const auth: string[] = []
    const users = serviceEnv.SESSION_PROXY_PROXY_AUTH_USERS
    if (users !== undefined) {
      const [user, ref] = Object.entries(JSON.parse(users) as Record<string, { env: string }>)[0]
      auth.push('-H', `Proxy-Authorization: Basic ${Buffer.from(`${user}:${serviceEnv[ref.env]}`).toString('base64')}`)
    }
    const reverse = args.includes('--reverse')
    const via = (path: string): string[] => reverse ? [...auth, `http://127.0.0.1:${proxy.port}${path}`] : [...auth, '-x', `http://127.0.0.1:${proxy.port}`, `${upstream.origin}${path}`]
    await curl(via('/login'))
    const r = await curl(via('/items'))
    t.equal(r.stdout, '/items cookie=SESSION=c1', `${reverse ? 'reverse' : 'forward'} proxying keeps the session`)
    if (auth.length > 0) t.equal((await curl(reverse ? [`http://127.0.0.1:${proxy.port}/items`] : ['-x', `http://127.0.0.1:${proxy.port}`, `${upstream.origin}/items`])).status, 407, 'without proxy credentials: 407')

    const health = await run(process.execPath, [join(ROOT, 'dist', 'healthcheck.js')], { env: { ...env, SESSION_PROXY_PORT: String(proxy.port) } })
    t.equal(health.code, 0, `healthy: ${health.stdout.toString('utf8').trim()}`)
    t.equal(await proxy.stop('SIGTERM'), 0)
  })
}
