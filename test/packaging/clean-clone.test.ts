/**
 * What a new user does: `git clone` into an empty directory (no ../shared or
 * anything else beside it), the README's install command, start the proxy,
 * proxy a request; and the test that once read outside the checkout.
 */
import { existsSync, readdirSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { NPM_QUIET_ENV, cloneRepo, pathWithThisNode, readmeSection, shellLines, startUntilListening, untracked } from '../helpers/packaging.js'
import { curl, run, startUpstream, tempDir } from '../helpers/proxy.js'

// npm ci with the dev dependencies dominates: about a minute on a quiet
// 2-core machine, several when it is shared. A limit, not a measurement.
t.setTimeout(420_000)

t.test('a fresh clone installs with the README\'s command and proxies', async (t) => {
  const root = tempDir('sp-clone-')
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  const repo = cloneRepo(join(root, 'session-proxy'))
  t.same(readdirSync(root), ['session-proxy'], 'nothing beside the clone')
  t.notOk(existsSync(join(repo, 'node_modules')) || existsSync(join(repo, 'dist')), 'no installed or built files come with the clone')

  // "npm ci && npm start": the install part, then the start part with a free port.
  const quickStart = shellLines(readmeSection('Quick start'))[0]
  const parts = quickStart.split('&&').map((p) => p.trim())
  t.equal(parts.length, 2, `install && start: ${quickStart}`)
  const env = { ...process.env, ...NPM_QUIET_ENV, PATH: pathWithThisNode() }
  const started = Date.now()
  const [cmd, ...args] = untracked(['sh', '-c', `cd "${repo}" && ${parts[0]}`])
  const install = await run(cmd, args, { env, timeoutMs: 360_000 })
  t.equal(install.code, 0, `${parts[0]}: ${install.stderr.slice(-2000)}`)
  t.comment(`${parts[0]} took ${Math.round((Date.now() - started) / 1000)} s on node ${process.version}`)
  t.ok(existsSync(join(repo, 'dist', 'cli.js')), 'the install built the proxy')

  const upstream = await startUpstream((req, res) => {
    res.writeHead(200, req.url === '/login' ? { 'set-cookie': 'JSESSIONID=fresh; Path=/' } : {})
    res.end(`cookie=${req.headers.cookie ?? 'none'}`)
  })
  t.teardown(() => upstream.close())
  const dataDir = join(root, 'data')
  // npm start runs node as its child: the whole process group gets the signal.
  const proxy = await startUntilListening(untracked(['sh', '-c', `${parts[1]} -- --port 0 --data-dir ${dataDir}`]), { cwd: repo, env, detached: true })
  t.teardown(() => proxy.stop('SIGKILL'))
  await curl(['-x', proxy.url, `${upstream.origin}/login`])
  const r = await curl(['-x', proxy.url, `${upstream.origin}/account`])
  t.equal(r.stdout, 'cookie=JSESSIONID=fresh', 'the session works from the clone')
  await proxy.stop('SIGTERM')
})

t.test('the http-state corpus test runs inside the clone alone', async (t) => {
  // It used to read a corpus from a directory beside the checkout: the fixture now lives in the repo.
  const root = tempDir('sp-clone-corpus-')
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  const repo = cloneRepo(join(root, 'session-proxy'))
  t.ok(existsSync(join(repo, 'test', 'fixtures', 'http-state')), 'the corpus is committed')
  const reads = await run('grep', ['-rnE', '--include=*.ts', '--include=*.mjs', '[.][.]/shared/', join(repo, 'test'), join(repo, 'src'), join(repo, 'scripts')])
  t.equal(reads.stdout.toString('utf8'), '', 'no test, source or script reads a directory beside the checkout')
})
