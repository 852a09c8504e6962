/**
 * The published package as its users get it: `npm pack` from a clean clone,
 * `npm install --omit=dev` of the tarball into an empty project on the running
 * Node (20 in the full suite, 24 in CI's smoke run), no engine warnings, no
 * dependency whose engines exclude a supported Node, and `session-proxy`
 * started from the install proxies a request.
 */
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { join } from 'node:path'
import t from 'tap'
import { NPM_QUIET_ENV, cloneRepo, pathWithThisNode, startUntilListening, untracked } from '../helpers/packaging.js'
import { ROOT, curl, run, startUpstream, tempDir } from '../helpers/proxy.js'

/** The first release of each supported line that the package promises (README "Node versions"). */
const SUPPORTED_NODES = ['20.18.1', '22.11.0', '24.11.0']

interface PackResult { filename: string, files: Array<{ path: string }>, entryCount: number, size: number }

/** Every installed package.json under node_modules, nested and scoped ones included. */
function installedPackages (dir: string, out: Array<{ name: string, version: string, engines?: { node?: string } }> = []): typeof out {
  if (!existsSync(dir)) return out
  for (const entry of readdirSync(dir)) {
    if (entry.startsWith('.')) continue
    if (entry.startsWith('@')) { installedPackages(join(dir, entry), out); continue }
    const pkg = join(dir, entry, 'package.json')
    if (existsSync(pkg)) out.push(JSON.parse(readFileSync(pkg, 'utf8')) as typeof out[number])
    installedPackages(join(dir, entry, 'node_modules'), out)
  }
  return out
}

// npm ci with the dev dependencies dominates: about a minute on a quiet
// 2-core machine, several when it is shared. A limit, not a measurement.
t.setTimeout(420_000)

t.test(`npm pack, install --omit=dev on node ${process.version}, run session-proxy`, async (t) => {
  const root = tempDir('sp-pack-')
  t.teardown(() => rmSync(root, { recursive: true, force: true }))
  const repo = cloneRepo(join(root, 'clone'))
  // The build needs the dev dependencies (tsc); the checkout's own are borrowed.
  symlinkSync(realpathSync(join(ROOT, 'node_modules')), join(repo, 'node_modules'))
  const env = { ...process.env, ...NPM_QUIET_ENV, PATH: pathWithThisNode() }
  const sh = async (script: string): ReturnType<typeof run> => await run('env', untracked(['sh', '-c', script]).slice(1), { env, timeoutMs: 360_000 })
  const build = await sh(`cd "${repo}" && npm run build`)
  t.equal(build.code, 0, build.stderr)

  const pack = await sh(`cd "${repo}" && npm pack --ignore-scripts --json --pack-destination "${root}"`)
  t.equal(pack.code, 0, pack.stderr)
  const [packed] = JSON.parse(pack.stdout.toString('utf8')) as PackResult[]
  const files = packed.files.map((f) => f.path)
  t.comment(`tarball: ${files.length} files, ${packed.size} bytes`)
  t.same(files.filter((f) => f.endsWith('.map')), [], 'no source maps')
  for (const f of ['LICENSE', 'README.md', 'package.json', 'dist/cli.js', 'dist/healthcheck.js', 'dist/config/config-validator.cjs', 'dist/config/default-config.json', 'config/default.yaml', 'dist/contracts/addon.d.ts', 'dist/contracts/addon.js']) {
    t.ok(files.includes(f), `${f} is packed`)
  }
  t.same(files.filter((f) => /^(src|test|scripts|bench|\.ci)\//.test(f)), [], 'no sources, tests or CI files')
  const manifest = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')) as { main?: string, bin: Record<string, string>, overrides?: unknown, license: string }
  if (manifest.main !== undefined) t.ok(files.includes(manifest.main.replace(/^\.\//, '')), `main (${manifest.main}) is a packed file`)
  for (const bin of Object.values(manifest.bin)) t.ok(files.includes(bin), `bin ${bin} is packed`)
  t.equal(manifest.overrides, undefined, 'no overrides: they would not reach the people who install the package')
  t.match(readFileSync(join(repo, 'LICENSE'), 'utf8'), new RegExp(`^${manifest.license} License`), 'LICENSE matches package.json')

  const app = join(root, 'app')
  mkdirSync(app)
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }))
  const install = await sh(`cd "${app}" && npm install --omit=dev "${join(root, packed.filename)}"`)
  const installOutput = install.stdout.toString('utf8') + install.stderr
  t.equal(install.code, 0, installOutput)
  t.notMatch(installOutput, /EBADENGINE/, `no engine warning on node ${process.version}`)
  // npm 11 lists a `prepare` script of a package installed from a file (not
  // the registry) as not covered by allowScripts; it does not run it, and a
  // registry install does not list it. Every other warning counts.
  const warnings = installOutput.split('\n').filter((l) => /^npm warn/i.test(l))
    .filter((l) => !/^npm warn install-scripts(\s*$|\s+1 package has install scripts|\s+session-proxy@[^ ]+ \(prepare: npm run build\)$|\s+Run `npm install-scripts)/.test(l))
  t.same(warnings, [], 'no other npm warning')

  const semver = createRequire(join(app, 'package.json'))('semver') as { satisfies: (v: string, range: string) => boolean }
  const packages = installedPackages(join(app, 'node_modules'))
  t.ok(packages.length > 20, `${packages.length} packages installed`)
  t.notOk(packages.some((p) => p.name === 'typescript' || p.name === 'tap'), 'no dev dependencies')
  // npm picks, within each range, the newest version whose engines accept the
  // Node it runs on (pino-pretty's strip-json-comments ^5 is 5.0 on Node 20,
  // 5.1 on 22+), so a tree is checked against its own Node line: the running
  // version and the line's first supported release.
  const major = process.versions.node.split('.')[0]
  const floor = SUPPORTED_NODES.find((v) => v.split('.')[0] === major)
  t.ok(floor !== undefined, `node ${process.version} is a supported line (${SUPPORTED_NODES.join(', ')})`)
  for (const node of [floor ?? process.versions.node, process.versions.node]) {
    const excluded = packages.filter((p) => p.engines?.node !== undefined && !semver.satisfies(node, p.engines.node)).map((p) => `${p.name}@${p.version} (node ${p.engines!.node!})`)
    t.same(excluded, [], `every dependency accepts node ${node}`)
  }

  // The addon types (README "Addons"): `session-proxy/addon` resolves from the install, and
  // the README's examples type-check against it from plain .mjs files (JSDoc, checkJs).
  const resolved = await sh(`cd "${app}" && node --input-type=module -e "console.log(import.meta.resolve('session-proxy/addon'))"`)
  t.equal(resolved.code, 0, resolved.stderr)
  t.match(resolved.stdout.toString('utf8'), /node_modules\/session-proxy\/dist\/contracts\/addon\.js/, 'session-proxy/addon resolves')
  for (const f of ['tag-requests.mjs', 'answer-from-fixture.mjs']) copyFileSync(join(ROOT, 'examples', 'addons', f), join(app, f))
  writeFileSync(join(app, 'drop-header.mjs'), [
    "/** @type {import('session-proxy/addon').Addon} */",
    "export default { name: 'no-server-header', response (flow) { flow.response.headers.delete('server') }, error (flow) { console.log(flow.error.code) } }",
    ''
  ].join('\n'))
  writeFileSync(join(app, 'tsconfig.json'), JSON.stringify({
    compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', target: 'es2022', allowJs: true, checkJs: true, noEmit: true, strict: true, typeRoots: [join(ROOT, 'node_modules', '@types')], types: ['node'] },
    files: ['tag-requests.mjs', 'answer-from-fixture.mjs', 'drop-header.mjs']
  }))
  const typed = await sh(`cd "${app}" && node "${join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')}" -p tsconfig.json`)
  t.equal(typed.code, 0, `the example addons type-check against session-proxy/addon: ${typed.stdout.toString('utf8')}${typed.stderr}`)

  const upstream = await startUpstream((req, res) => {
    res.writeHead(200, req.url === '/login' ? { 'set-cookie': 'SESSION=pkg; Path=/' } : {})
    res.end(`cookie=${req.headers.cookie ?? 'none'}`)
  })
  t.teardown(() => upstream.close())
  const proxy = await startUntilListening(untracked([join(app, 'node_modules', '.bin', 'session-proxy'), '--port', '0', '--data-dir', join(root, 'data')]), { cwd: app, env })
  t.teardown(() => proxy.stop('SIGKILL'))
  await curl(['-x', proxy.url, `${upstream.origin}/login`])
  const r = await curl(['-x', proxy.url, `${upstream.origin}/orders`])
  t.equal(r.stdout, 'cookie=SESSION=pkg', 'the installed command proxies with the session')
  t.equal(await proxy.stop('SIGTERM'), 0)
})
