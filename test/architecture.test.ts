/**
 * The layers of src/ import downward only (ARCHITECTURE.md): no import cycle, type imports
 * included, and the direction rules between folders. The checker reads the import lines
 * itself, so no dependency is needed and a new cycle fails here with the files named.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { dirname, join, relative, resolve } from 'node:path'
import t from 'tap'
import { ROOT } from './helpers/proxy.js'

const SRC = join(ROOT, 'src')

function sourceFiles (dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name)
    return statSync(p).isDirectory() ? sourceFiles(p) : p.endsWith('.ts') ? [p] : []
  })
}

/** `import … from './x.js'`, `import type …`, `export … from`, `import './x.js'` and `import('./x.js')`. */
const IMPORT_RE = /(?:^|[\n;])\s*(?:import|export)\s+(?:type\s+)?(?:[^'";]*?\sfrom\s+)?['"](\.{1,2}\/[^'"]+)['"]|\bimport\s*\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g

/** Every file in src/ (relative, e.g. `proxy/forward.ts`) with the src/ files it imports. */
export function importGraph (): Map<string, string[]> {
  const graph = new Map<string, string[]>()
  for (const file of sourceFiles(SRC)) {
    const text = readFileSync(file, 'utf8')
    const targets = new Set<string>()
    for (const m of text.matchAll(IMPORT_RE)) {
      const spec = (m[1] ?? m[2]) as string
      const abs = resolve(dirname(file), spec.replace(/\.js$/, '.ts'))
      if (abs.startsWith(SRC)) targets.add(relative(SRC, abs))
    }
    graph.set(relative(SRC, file), [...targets].sort())
  }
  return graph
}

/** Tarjan's strongly connected components; every component of more than one file (or a self-import) is a cycle. */
export function cycles (graph: Map<string, string[]>): string[][] {
  let counter = 0
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const onStack = new Set<string>()
  const found: string[][] = []
  const visit = (v: string): void => {
    index.set(v, counter)
    low.set(v, counter)
    counter++
    stack.push(v)
    onStack.add(v)
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w)
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number))
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v) as number, index.get(w) as number))
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = []
      let w: string
      do {
        w = stack.pop() as string
        onStack.delete(w)
        component.push(w)
      } while (w !== v)
      if (component.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(component.sort())
    }
  }
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v)
  return found
}

const graph = importGraph()

t.test('the checker reads import lines of every form', async (t) => {
  const sample = [
    "import { a } from './a.js'",
    "import type { B } from '../b.js'",
    'import {\n  c,\n  type D\n} from "./c.js"',
    "export { e } from './e.js'",
    "export type { F } from './f.js'",
    "export * from './g.js'",
    "import './h.js'",
    "const i = await import('./i.js')",
    "import { j } from 'node:fs'"
  ].join('\n')
  const specs = [...sample.matchAll(IMPORT_RE)].map((m) => m[1] ?? m[2])
  t.same(specs, ['./a.js', '../b.js', './c.js', './e.js', './f.js', './g.js', './h.js', './i.js'])
  t.same(cycles(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']], ['d', ['a']], ['e', ['e']]])), [['a', 'b', 'c'], ['e']])
  t.ok(graph.size > 50, `read ${graph.size} files`)
  t.ok((graph.get('server.ts') ?? []).length > 3, 'server.ts imports are found')
})

t.test('src/ has no import cycle, type imports included', async (t) => {
  const found = cycles(graph)
  t.same(found.map((c) => c.join(' -> ')), [], found.length === 0 ? 'no cycle' : `${found.length} cycle(s):\n${found.map((c) => `  [${c.length}] ${c.join(', ')}`).join('\n')}`)
})

/** The layer of a src/ file: contracts 1, config/net/pipeline 2, session/observe 3, proxy 4, admin 5, wiring 6. */
function layerOf (file: string): number {
  const top = file.includes('/') ? file.slice(0, file.indexOf('/')) : file
  switch (top) {
    case 'contracts': case 'errors.ts': case 'version.ts': case 'process-guard.ts': return 1
    case 'config': case 'net': case 'log.ts': case 'pipeline': return 2
    case 'session': case 'observe': return 3
    case 'proxy': return 4
    case 'admin': return 5
    default: return 6 // server.ts, cli.ts, commands/, healthcheck.ts
  }
}

/**
 * Upward imports that remain, each named so that no new one can slip in. The contracts
 * still name four classes by type (making them interfaces is the pipeline work of issue
 * 10); net/connections.ts answers with the one error writer; observe reads pool stats.
 */
const KNOWN_UPWARD = new Set([
  'contracts/exchange.ts -> proxy/target.ts',
  'contracts/exchange.ts -> session/profiles.ts',
  'contracts/proxy-deps.ts -> observe/events.ts',
  'contracts/proxy-deps.ts -> proxy/upstream.ts',
  'contracts/proxy-deps.ts -> session/profiles.ts',
  'net/connections.ts -> proxy/respond.ts',
  'observe/metrics.ts -> proxy/upstream.ts',
  'observe/services.ts -> proxy/upstream.ts'
])

t.test('imports point downward: contracts, config/net, session/observe, proxy, admin, wiring', async (t) => {
  const upward: string[] = []
  for (const [file, targets] of graph) {
    for (const target of targets) {
      const edge = `${file} -> ${target}`
      if (layerOf(target) > layerOf(file) && layerOf(file) < 5 && !KNOWN_UPWARD.has(edge)) upward.push(edge)
    }
  }
  t.same(upward, [], 'no upward import outside the named ones')
  for (const edge of KNOWN_UPWARD) {
    const [file, target] = edge.split(' -> ') as [string, string]
    t.ok(graph.get(file)?.includes(target), `${edge} still exists (drop it from KNOWN_UPWARD when it goes)`)
  }
  const contractTargets = [...graph].filter(([f]) => f.startsWith('contracts/')).flatMap(([, ts]) => ts)
  t.notOk(contractTargets.some((f) => /^proxy\/(forward|managed-exchange|intercept|tunnel|websocket|reverse|session-client)\.ts$/.test(f)), 'contracts import no proxy entry')
  const lowTargets = [...graph].filter(([f]) => f.startsWith('config/') || f.startsWith('net/')).map(([f, ts]) => ts.filter((x) => /^(proxy|admin|observe)\//.test(x) && !KNOWN_UPWARD.has(`${f} -> ${x}`)).map((x) => `${f} -> ${x}`)).flat()
  t.same(lowTargets, [], 'config and net import nothing from proxy, admin or observe')
  const entryImporters = [...graph].filter(([f, ts]) => f !== 'cli.ts' && (ts.includes('server.ts') || ts.includes('cli.ts'))).map(([f]) => f)
  t.same(entryImporters, [], 'only cli.ts imports server.ts, and nothing imports cli.ts')
})

t.test('every src/ path named in ARCHITECTURE.md exists', async (t) => {
  const text = readFileSync(join(ROOT, 'ARCHITECTURE.md'), 'utf8')
  const named = new Set([...text.matchAll(/\bsrc\/[A-Za-z0-9_./-]*[A-Za-z0-9_/]/g)].map((m) => m[0].replace(/\/$/, '')))
  t.ok(named.size > 30, `ARCHITECTURE.md names ${named.size} paths`)
  for (const path of named) t.ok(existsSync(join(ROOT, path)), `${path} exists`)
  for (const dir of ['contracts', 'config', 'net', 'session', 'observe', 'proxy', 'admin']) t.ok(named.has(`src/${dir}`), `the layers table names src/${dir}/`)
})
