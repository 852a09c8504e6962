/**
 * README "Several replicas" runs as written: its shell block is read from
 * the README and each line run (ports swapped for free ones, the example
 * app on :9000 for a local one), so the copy-paste example cannot rot.
 */
import { execFile } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { startUntilListening, type Started } from '../helpers/packaging.js'
import { CLI, ROOT, cleanup, startUpstream, tempDir } from '../helpers/proxy.js'
import { freePort, hasRedis, startRedis, type RedisServer } from '../helpers/redis.js'

const readme = readFileSync(join(ROOT, 'README.md'), 'utf8')
const section = readme.slice(readme.indexOf('## Several replicas'))
const block = /<!-- test\/e2e\/readme-replicas\.test\.ts runs this block: -->\n```sh\n([\s\S]*?)```/.exec(section)?.[1]

async function runIn (cwd: string, cmd: string[]): Promise<{ code: number, stdout: string, stderr: string }> {
  return await new Promise((resolve) => {
    execFile(cmd[0]!, cmd.slice(1), { cwd, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === 'number' ? err.code : 1, stdout, stderr })
    })
  })
}

t.ok(block, 'README "Several replicas" has the tested block')
if (!hasRedis()) {
  t.fail('redis-server is not installed: .ci/run installs it (apt-get install redis-server)')
} else if (block !== undefined) {
  t.test('the README block runs', async (t) => {
    const dir = tempDir('sp-readme-replicas-')
    const upstream = await startUpstream((req, res) => {
      res.writeHead(200, req.url === '/login' ? { 'set-cookie': 'SESSION=from-a; Path=/' } : {})
      res.end(`cookie=${req.headers.cookie ?? 'none'}`)
    })
    const started: Started[] = []
    let redis: RedisServer | null = null
    t.teardown(async () => {
      for (const s of started) await s.stop('SIGTERM')
      await redis?.stop()
      await upstream.close()
      cleanup(dir)
      if (redis !== null) cleanup(redis.dir)
    })
    const ports = new Map<string, string>([['9000', String(upstream.port)]])
    for (const p of ['6379', '8081', '8082']) ports.set(p, String(await freePort()))
    const lines = block.split('\n').map((l) => l.replace(/\s+#.*$/, '').trim()).filter(Boolean)
    const outputs: string[] = []
    for (const raw of lines) {
      const line = raw.replace(/\b(6379|8081|8082|9000)\b/g, (p) => ports.get(p)!)
      const background = line.endsWith(' &')
      const words = line.replace(/ &$/, '').split(/\s+/)
      if (words[0] === 'redis-server') {
        // The helper runs it in a temp directory and stops it by pid; same port and options.
        t.match(line, /--appendonly yes/)
        redis = await startRedis({ appendOnly: true, port: Number(ports.get('6379')) })
        continue
      }
      const cmd = words[0] === 'session-proxy' ? [process.execPath, CLI, ...words.slice(1)] : words
      if (background) {
        started.push(await startUntilListening(cmd, { cwd: dir, env: { ...process.env, SESSION_PROXY_LOG_LEVEL: 'info' } }))
        continue
      }
      const r = await runIn(dir, cmd)
      t.equal(r.code, 0, r.code === 0 ? raw : `${raw}: ${r.stderr}`)
      outputs.push(r.stdout)
    }
    t.equal(started.length, 2, 'two replicas')
    t.ok(outputs.includes('cookie=SESSION=from-a'), `replica B sent the cookie set through replica A (${outputs.join(' | ')})`)
    const exported = JSON.parse(readFileSync(join(dir, 'profiles.json'), 'utf8')) as { profiles: Array<{ name: string, cookies: Array<{ key: string, value: string }> }> }
    t.same(exported.profiles.map((p) => [p.name, p.cookies.map((c) => `${c.key}=${c.value}`)]), [['default', ['SESSION=from-a']]], 'the export holds the profile')
    t.ok(existsSync(join(dir, 'single', 'jars', 'default.jsonl')), 'imported into a file store')
    t.match(readFileSync(join(dir, 'single', 'jars', 'default.jsonl'), 'utf8'), /"value":"from-a"/)
  })
}
