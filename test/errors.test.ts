/** The error catalogue (src/errors.ts, docs/errors.md) names every SP_* code the source uses. */
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { ERROR_CATALOGUE, SessionProxyError } from '../src/errors.js'
import { ROOT } from './helpers/proxy.js'

function sourceFiles (dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name)
    return statSync(p).isDirectory() ? sourceFiles(p) : p.endsWith('.ts') ? [p] : []
  })
}

const used = new Map<string, string>()
for (const file of sourceFiles(join(ROOT, 'src'))) {
  for (const m of readFileSync(file, 'utf8').matchAll(/\bSP_[A-Z0-9_]*[A-Z0-9]\b/g)) if (!used.has(m[0])) used.set(m[0], file.slice(ROOT.length))
}
const docs = readFileSync(join(ROOT, 'docs', 'errors.md'), 'utf8')

t.test('every SP_ code in src/ is in ERROR_CATALOGUE and docs/errors.md, with the same status', async (t) => {
  t.ok(used.size > 20, `found ${used.size} codes`)
  for (const [code, file] of used) {
    const entry = ERROR_CATALOGUE[code]
    t.ok(entry !== undefined, `${code} (used in ${file}) is in ERROR_CATALOGUE`)
    const row = new RegExp(`^\\| \`${code}\` \\| (\\d+) \\|`, 'm').exec(docs)
    t.ok(row !== null, `${code} (used in ${file}) is in docs/errors.md`)
    if (entry !== undefined && row !== null) t.equal(Number(row[1]), entry.status, `${code}: same status in both`)
  }
})

t.test('the catalogue lists no code twice in the docs, and every entry says what it means', async (t) => {
  for (const [code, e] of Object.entries(ERROR_CATALOGUE)) {
    t.match(code, /^SP_[A-Z0-9_]+$/)
    t.ok(e.meaning.length > 10, `${code} has a meaning`)
    t.ok(e.status === 0 || (e.status >= 400 && e.status < 600), `${code} has an error status`)
    t.equal(docs.split(`| \`${code}\` |`).length - 1, 1, `${code} appears once in the docs table`)
  }
})

t.test('a SessionProxyError carries code and status', async (t) => {
  const e = new SessionProxyError('SP_OVERLOADED', 503, 'busy')
  t.equal(e.code, 'SP_OVERLOADED')
  t.equal(e.statusCode, 503)
})
