/**
 * There is no Docker engine here, so the Dockerfile is replayed
 * (test/helpers/dockerfile.ts): every stage built in its own directory from a
 * fresh clone, then the image's ENTRYPOINT + CMD started as a non-root user
 * with the image's ENV, the README's `docker run` lines proxied through, the
 * HEALTHCHECK run, and SIGTERM sent.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { containerEnv, parseDockerfile, parseEnv, replayDockerfile, runShell, type Stage } from '../helpers/dockerfile.js'
import { NOBODY, NPM_QUIET_ENV, cloneRepo, parseDockerRun, pathWithThisNode, readmeSection, shellLines, startUntilListening, type Started } from '../helpers/packaging.js'
import { curl, startUpstream, tempDir } from '../helpers/proxy.js'

/**
 * As the unprivileged user. tap's process tracking adds NODE_OPTIONS hooks to
 * every child, and they would write into the root-owned .tap/ directory: a
 * container has no such hooks, so they are removed (coverage of these
 * processes comes from the other tests).
 */
const asNobody = (cmd: string[]): string[] => ['setpriv', `--reuid=${NOBODY.uid}`, `--regid=${NOBODY.gid}`, '--clear-groups', '--', 'env', '-u', 'NODE_OPTIONS', '-u', 'NODE_V8_COVERAGE', ...cmd]

/** The container's command with the host's node standing in for the image's. */
function hostCommand (cmd: string[]): string[] {
  return cmd[0] === 'node' ? [process.execPath, ...cmd.slice(1)] : cmd
}

function envOf (image: Stage, extra: Record<string, string>): NodeJS.ProcessEnv {
  // Only what the image sets (and PATH): a container does not inherit the host's environment.
  return { PATH: pathWithThisNode(), ...containerEnv(image), ...extra }
}

async function startContainer (image: Stage, args: string[] | null, extraEnv: Record<string, string>): Promise<Started> {
  const cmd = [...image.entrypoint, ...(args ?? image.cmd)]
  return await startUntilListening(asNobody(hostCommand(cmd)), { cwd: join(image.dir, image.workdir), env: envOf(image, extraEnv) })
}

async function healthcheck (image: Stage, env: Record<string, string>): Promise<{ code: number | null, output: string }> {
  return await runShell(asNobody(hostCommand(image.healthcheck!)), join(image.dir, image.workdir), envOf(image, env))
}

// npm ci with the dev dependencies dominates: about a minute on a quiet
// 2-core machine, several when it is shared. A limit, not a measurement.
t.setTimeout(420_000)

t.test('the replay parses what Docker parses', async (t) => {
  const ins = parseDockerfile('# c\nFROM a AS b\nRUN one \\\n  # inner comment\n  two\nENV A=1 \\\n    B="x y"\n')
  t.same(ins.map((i) => [i.op, i.args]), [['FROM', 'a AS b'], ['RUN', 'one two'], ['ENV', 'A=1 B="x y"']])
  t.same(parseEnv('A=1 B="x \\"y\\"" C=\'z\''), { A: '1', B: 'x "y"', C: 'z' })
  t.same(parseEnv('LEGACY some value'), { LEGACY: 'some value' })
})

t.test('the replay follows Docker\'s COPY, CMD and HEALTHCHECK rules', async (t) => {
  const root = tempDir('sp-docker-small-')
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  const context = join(root, 'context')
  mkdirSync(join(context, 'dir', 'sub'), { recursive: true })
  writeFileSync(join(context, 'a.txt'), 'a')
  writeFileSync(join(context, 'b.txt'), 'b')
  writeFileSync(join(context, 'dir', 'sub', 'c.txt'), 'c')
  const stages = await replayDockerfile([
    'ARG V=1', 'FROM base AS one', 'LABEL x=y', 'WORKDIR /w', 'COPY a.txt b.txt out/', 'COPY dir ./tree', 'COPY ["a.txt", "renamed.txt"]', 'RUN cat renamed.txt tree/sub/c.txt > both',
    'FROM base', 'WORKDIR /app', 'COPY --from=0 /w/both ./', 'COPY --from=one --chown=node:node /w/out ./owned', 'ENV LEGACY some value', 'VOLUME ["/v1", "/v2"]', 'EXPOSE 1 2', 'STOPSIGNAL SIGINT',
    'HEALTHCHECK NONE', 'ENTRYPOINT ["run"]', 'CMD echo hi'
  ].join('\n'), { context, root, ...NOBODY })
  const [one, two] = stages
  t.equal(readFileSync(join(one.dir, 'w', 'out', 'b.txt'), 'utf8'), 'b', 'several sources go into a directory')
  t.equal(readFileSync(join(one.dir, 'w', 'tree', 'sub', 'c.txt'), 'utf8'), 'c', 'a directory\'s contents are copied')
  t.equal(readFileSync(join(two.dir, 'app', 'both'), 'utf8'), 'ac', 'RUN ran in WORKDIR; COPY --from by index')
  t.equal(statSync(join(two.dir, 'app', 'owned', 'a.txt')).uid, NOBODY.uid, '--chown maps to the unprivileged user')
  t.same(two.volumes, ['/v1', '/v2'])
  t.same(two.expose, ['1', '2'])
  t.equal(two.stopSignal, 'SIGINT')
  t.equal(two.healthcheck, null)
  t.same([...two.entrypoint, ...two.cmd], ['run', '/bin/sh', '-c', 'echo hi'])
  t.same(containerEnv({ ...two, env: { A: '/data', B: 'x', C: 'LEGACY' } }), { A: join(two.dir, 'data'), B: 'x', C: 'LEGACY' }, 'container paths in ENV map into the stage')
  await t.rejects(replayDockerfile('FROM a AS x\nFROM x\n', { context, root: join(root, 'r2'), ...NOBODY }), /FROM an earlier stage/)
  await t.rejects(replayDockerfile('# nothing\n', { context, root, ...NOBODY }), /no FROM/)
  await t.rejects(replayDockerfile('FROM a\nCOPY ../x ./\n', { context, root: join(root, 'r3'), ...NOBODY }), /outside the context/)
  await t.rejects(replayDockerfile('FROM a\nCOPY onlyone\n', { context, root: join(root, 'r4'), ...NOBODY }), /needs a source and a destination/)
  await t.rejects(replayDockerfile('FROM a\nHEALTHCHECK --interval=1s curl x\n', { context, root: join(root, 'r5'), ...NOBODY }), /expected HEALTHCHECK/)
  await t.rejects(replayDockerfile('FROM a b c\n', { context, root: join(root, 'r6'), ...NOBODY }), /cannot parse/)
  t.throws(() => parseDockerfile('FROM a\n!!\n'), /line 2: cannot parse/)
})

t.test('a Dockerfile that cannot build fails the replay', async (t) => {
  const root = tempDir('sp-docker-bad-')
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  const context = join(root, 'context')
  mkdirSync(context)
  writeFileSync(join(context, 'package.json'), '{}')
  const opts = { context, root, ...NOBODY }
  // The original bug: the build step needs a file no COPY brought in.
  await t.rejects(replayDockerfile('FROM node AS build\nWORKDIR /app\nCOPY package.json ./\nRUN node scripts/compile-config.mjs\n', opts), /line 4 \(RUN[^]*exited with 1[^]*Cannot find module/)
  await t.rejects(replayDockerfile('FROM node\nWORKDIR /app\nCOPY scripts ./scripts\n', opts), /scripts does not exist in the build context \(is it committed\?\)/)
  await t.rejects(replayDockerfile('FROM node\nRUN mkdir -p /data\n', opts), /an absolute path in RUN cannot be replayed/)
  await t.rejects(replayDockerfile('FROM node\nCOPY --from=build /app ./\n', opts), /no earlier stage named build/)
  await t.rejects(replayDockerfile('FROM node\nONBUILD RUN x\n', opts), /does not know ONBUILD/)
  await t.rejects(replayDockerfile('WORKDIR /app\n', opts), /before any FROM/)
})

t.test('the Dockerfile builds from committed files and the image runs as a sidecar', async (t) => {
  const root = tempDir('sp-docker-')
  chmodSync(root, 0o755)
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  const context = cloneRepo(join(root, 'context'))
  const started = Date.now()
  const stages = await replayDockerfile(readFileSync(join(context, 'Dockerfile'), 'utf8'), {
    context, root, ...NOBODY, runEnv: { ...NPM_QUIET_ENV, PATH: pathWithThisNode() }, log: (m) => t.comment(m)
  })
  t.comment(`replayed ${stages.length} stages in ${Math.round((Date.now() - started) / 1000)} s on node ${process.version}`)
  const image = stages.at(-1)!
  t.ok(image.user !== null && image.user !== 'root' && image.user !== '0', `runs as a non-root user (${image.user ?? 'none'})`)
  t.equal(image.entrypoint[0], 'node', 'exec-form ENTRYPOINT: node is PID 1 and gets SIGTERM')
  t.ok(image.volumes.includes(image.env.SESSION_PROXY_DATA_DIR), 'the data directory is a volume')
  t.ok(image.healthcheck !== null, 'there is a HEALTHCHECK')
  t.match(image.env.SESSION_PROXY_ALLOW_CLIENTS, /\S/, 'the allowlist is in ENV, so a replaced CMD keeps it')
  const dataDir = join(image.dir, image.env.SESSION_PROXY_DATA_DIR)
  t.equal(statSync(dataDir).uid, NOBODY.uid, 'the data directory belongs to the runtime user')
  t.notOk(existsSync(join(image.dir, 'app', 'node_modules', 'typescript')), 'no dev dependencies in the image')

  const upstream = await startUpstream((req, res) => {
    const headers: Record<string, string> = { 'content-type': 'text/plain' }
    if (req.url === '/login') headers['set-cookie'] = 'SESSION=abc123; Path=/; HttpOnly'
    res.writeHead(200, headers)
    res.end(`${req.url ?? ''} cookie=${req.headers.cookie ?? 'none'}`)
  })
  t.teardown(() => upstream.close())
  const docker = shellLines(readmeSection('Docker')).filter((l) => l.startsWith('docker run '))
  t.ok(docker.length >= 2, 'the README shows docker run lines')

  await t.test('the README\'s forward-proxy line: default CMD, JSON logs, health, SIGTERM', async (t) => {
    const forward = parseDockerRun(docker.find((l) => !l.includes('--reverse'))!)
    t.same(forward.args, [], 'the README runs the image\'s own CMD')
    t.ok(forward.env.SESSION_PROXY_ADMIN_TOKEN !== undefined, 'with an admin token, as every listener beyond loopback should have')
    const c = await startContainer(image, null, { ...forward.env, SESSION_PROXY_PORT: '0' })
    t.teardown(() => c.stop('SIGKILL'))
    t.match(c.url, /^http:\/\/0\.0\.0\.0:/, 'listens beyond loopback (the allowlist permits it)')
    const login = await curl(['-x', `http://127.0.0.1:${c.port}`, `${upstream.origin}/login`])
    t.equal(login.status, 200)
    const next = await curl(['-x', `http://127.0.0.1:${c.port}`, `${upstream.origin}/orders`])
    t.equal(next.stdout, '/orders cookie=SESSION=abc123', 'the session cookie is sent back')
    const health = await healthcheck(image, { ...forward.env, SESSION_PROXY_PORT: String(c.port) })
    t.equal(health.code, 0, `HEALTHCHECK passes: ${health.output.trim()}`)
    t.match(health.output, /^healthy: .*"status":"ok"/)
    t.equal(await c.stop('SIGTERM'), 0, 'SIGTERM shuts down cleanly')
    for (const line of c.stdout) t.doesNotThrow(() => JSON.parse(line), `stdout is JSON lines: ${line.slice(0, 60)}`)
    t.ok(c.stdout.some((l) => l.includes('"msg":"shutting down"') && l.includes('SIGTERM')), 'the shutdown is logged')
    t.ok(existsSync(join(dataDir, 'jars')), 'the jar went to the volume')
    const down = await healthcheck(image, { ...forward.env, SESSION_PROXY_PORT: String(c.port) })
    t.equal(down.code, 1, 'HEALTHCHECK fails when the proxy is gone')
    t.match(down.output, /^unhealthy: /)
  })

  await t.test('the README\'s sidecar line: --reverse replaces CMD and keeps the safe defaults', async (t) => {
    const line = docker.find((l) => l.includes('--reverse'))!
    const sidecar = parseDockerRun(line)
    const reverseAt = sidecar.args.indexOf('--reverse')
    t.ok(reverseAt !== -1, line)
    const args = sidecar.args.map((a, i) => i === reverseAt + 1 ? upstream.origin : a)
    t.ok(sidecar.env.SESSION_PROXY_ADMIN_TOKEN !== undefined, 'the README sets an admin token')
    const c = await startContainer(image, args, { ...sidecar.env, SESSION_PROXY_PORT: '0' })
    t.teardown(() => c.stop('SIGKILL'))
    await curl([`http://127.0.0.1:${c.port}/login`])
    const items = await curl([`http://127.0.0.1:${c.port}/items`])
    t.equal(items.status, 200)
    t.equal(items.stdout, '/items cookie=SESSION=abc123', 'plain requests go to the upstream with the session')
    const health = await healthcheck(image, { ...sidecar.env, SESSION_PROXY_PORT: String(c.port) })
    t.equal(health.code, 0, `HEALTHCHECK passes with the admin token: ${health.output.trim()}`)
    t.equal(await c.stop('SIGTERM'), 0)
  })
})
