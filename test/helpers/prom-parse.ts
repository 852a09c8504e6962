/**
 * A strict parser for the Prometheus text exposition format 0.0.4, for tests:
 * it throws on anything a Prometheus server would reject or that breaks the
 * format's rules (TYPE before samples, one TYPE per family, contiguous
 * families, valid names and escapes, histogram buckets cumulative with a
 * +Inf bucket equal to _count, no duplicate series).
 */
export interface Sample { name: string, labels: Record<string, string>, value: number }
export interface Family { name: string, type: string, help: string, samples: Sample[] }

const METRIC = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/
const LABEL = /^[a-zA-Z_][a-zA-Z0-9_]*$/
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped'])

function parseValue (s: string, line: number): number {
  if (s === '+Inf') return Infinity
  if (s === '-Inf') return -Infinity
  if (s === 'NaN') return NaN
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s)) throw new Error(`line ${line}: bad value ${JSON.stringify(s)}`)
  return Number(s)
}

function parseLabels (s: string, line: number): Record<string, string> {
  const out: Record<string, string> = {}
  let i = 0
  while (i < s.length) {
    const eq = s.indexOf('=', i)
    if (eq === -1) throw new Error(`line ${line}: label without '='`)
    const name = s.slice(i, eq)
    if (!LABEL.test(name) || name.startsWith('__')) throw new Error(`line ${line}: bad label name ${JSON.stringify(name)}`)
    if (s[eq + 1] !== '"') throw new Error(`line ${line}: label value must be quoted`)
    let j = eq + 2
    let value = ''
    for (;;) {
      if (j >= s.length) throw new Error(`line ${line}: unterminated label value`)
      const c = s[j]!
      if (c === '\\') {
        const n = s[j + 1]
        if (n === '\\') value += '\\'
        else if (n === '"') value += '"'
        else if (n === 'n') value += '\n'
        else throw new Error(`line ${line}: bad escape \\${n ?? ''}`)
        j += 2
      } else if (c === '"') {
        j++
        break
      } else {
        if (c === '\n') throw new Error(`line ${line}: raw newline in label value`)
        value += c
        j++
      }
    }
    if (name in out) throw new Error(`line ${line}: duplicate label ${name}`)
    out[name] = value
    if (j === s.length) break
    if (s[j] !== ',') throw new Error(`line ${line}: expected ',' after a label`)
    i = j + 1
  }
  return out
}

function familyOf (sample: string, families: Map<string, Family>): Family | undefined {
  for (const suffix of ['_bucket', '_sum', '_count', '']) {
    if (suffix !== '' && !sample.endsWith(suffix)) continue
    const f = families.get(sample.slice(0, sample.length - suffix.length))
    if (f !== undefined && (suffix === '' || f.type === 'histogram' || f.type === 'summary')) return f
  }
  return undefined
}

export function parsePrometheusStrict (text: string): Family[] {
  if (!text.endsWith('\n')) throw new Error('the exposition must end with a newline')
  const families = new Map<string, Family>()
  const order: Family[] = []
  const closed = new Set<string>()
  const seen = new Set<string>()
  let current: Family | null = null
  const lines = text.slice(0, -1).split('\n')
  lines.forEach((raw, idx) => {
    const n = idx + 1
    if (raw === '') return
    if (raw.startsWith('#')) {
      const m = /^# (HELP|TYPE) (\S+) ?(.*)$/.exec(raw)
      if (m === null) return // a plain comment
      const [, kind, name, rest] = m as unknown as [string, string, string, string]
      if (!METRIC.test(name)) throw new Error(`line ${n}: bad metric name ${name}`)
      let f = families.get(name)
      if (f === undefined) {
        if (closed.has(name)) throw new Error(`line ${n}: family ${name} appears twice`)
        f = { name, type: 'untyped', help: '', samples: [] }
        families.set(name, f)
        order.push(f)
      } else if (f.samples.length > 0) {
        throw new Error(`line ${n}: ${kind} for ${name} after its samples`)
      }
      if (current !== null && current !== f) closed.add(current.name)
      current = f
      if (kind === 'TYPE') {
        if (!TYPES.has(rest)) throw new Error(`line ${n}: unknown type ${rest}`)
        if (f.type !== 'untyped') throw new Error(`line ${n}: second TYPE for ${name}`)
        f.type = rest
      } else {
        f.help = rest
      }
      return
    }
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)( -?\d+)?$/.exec(raw)
    if (m === null) throw new Error(`line ${n}: not a sample: ${raw}`)
    const name = m[1]!
    const labels = m[3] !== undefined ? parseLabels(m[3], n) : {}
    const value = parseValue(m[4]!, n)
    const f = familyOf(name, families)
    if (f === undefined) throw new Error(`line ${n}: sample ${name} has no TYPE line before it`)
    if (f !== current) throw new Error(`line ${n}: sample of ${f.name} outside its family's block`)
    const key = name + JSON.stringify(Object.entries(labels).sort())
    if (seen.has(key)) throw new Error(`line ${n}: duplicate series ${key}`)
    seen.add(key)
    if (f.type === 'counter' && !(value >= 0)) throw new Error(`line ${n}: counter ${name} is negative`)
    if (f.type === 'histogram' && name === f.name) throw new Error(`line ${n}: histogram sample without _bucket/_sum/_count`)
    if (name.endsWith('_bucket') && f.type === 'histogram' && labels.le === undefined) throw new Error(`line ${n}: bucket without le`)
    f.samples.push({ name, labels, value })
  })
  for (const f of order) if (f.type === 'histogram') checkHistogram(f)
  return order
}

function checkHistogram (f: Family): void {
  const groups = new Map<string, Sample[]>()
  for (const s of f.samples) {
    const { le, ...rest } = s.labels
    void le
    const k = JSON.stringify(Object.entries(rest).sort())
    groups.set(k, [...(groups.get(k) ?? []), s])
  }
  for (const [k, samples] of groups) {
    const buckets = samples.filter((s) => s.name === `${f.name}_bucket`)
    let prevLe = -Infinity
    let prev = 0
    for (const b of buckets) {
      const le = parseValue(b.labels.le!, 0)
      if (le <= prevLe) throw new Error(`${f.name}${k}: buckets not in increasing le order`)
      if (b.value < prev) throw new Error(`${f.name}${k}: bucket counts are not cumulative`)
      prevLe = le
      prev = b.value
    }
    if (prevLe !== Infinity) throw new Error(`${f.name}${k}: no +Inf bucket`)
    const count = samples.find((s) => s.name === `${f.name}_count`)
    if (count === undefined || samples.find((s) => s.name === `${f.name}_sum`) === undefined) throw new Error(`${f.name}${k}: _sum or _count missing`)
    if (count.value !== prev) throw new Error(`${f.name}${k}: _count ${count.value} != +Inf bucket ${prev}`)
  }
}

export function sampleValue (families: Family[], name: string, labels: Record<string, string> = {}): number | undefined {
  for (const f of families) {
    for (const s of f.samples) {
      if (s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v)) return s.value
    }
  }
  return undefined
}
