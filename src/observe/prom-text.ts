/**
 * Prometheus text exposition format 0.0.4, written by hand: the proxy needs
 * a few counters, gauges and one histogram, which is less code than wiring a
 * client library's registry and costs no dependency.
 */
export const PROM_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

export type Labels = Readonly<Record<string, string>>

function escapeLabel (v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"')
}

function formatValue (v: number): string {
  if (v === Infinity) return '+Inf'
  if (v === -Infinity) return '-Inf'
  if (Number.isNaN(v)) return 'NaN'
  return String(v)
}

export function formatLabels (labels: Labels): string {
  const keys = Object.keys(labels)
  if (keys.length === 0) return ''
  return '{' + keys.map((k) => `${k}="${escapeLabel(labels[k]!)}"`).join(',') + '}'
}

export class PromWriter {
  private readonly lines: string[] = []

  /** Starts a metric family: HELP and TYPE come once, before its samples. */
  family (name: string, type: 'counter' | 'gauge' | 'histogram', help: string): this {
    this.lines.push(`# HELP ${name} ${help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${name} ${type}`)
    return this
  }

  sample (name: string, labels: Labels, value: number): this {
    this.lines.push(`${name}${formatLabels(labels)} ${formatValue(value)}`)
    return this
  }

  toString (): string {
    return this.lines.join('\n') + '\n'
  }
}

/** Cumulative histogram with fixed bucket bounds (seconds). */
export class Histogram {
  readonly bounds: readonly number[]
  readonly counts: number[]
  sum = 0
  count = 0

  constructor (bounds: readonly number[]) {
    this.bounds = bounds
    this.counts = new Array<number>(bounds.length).fill(0)
  }

  observe (v: number): void {
    this.sum += v
    this.count++
    const b = this.bounds
    for (let i = 0; i < b.length; i++) {
      if (v <= b[i]!) { this.counts[i]!++; return }
    }
  }

  write (w: PromWriter, name: string, labels: Labels): void {
    let cumulative = 0
    for (let i = 0; i < this.bounds.length; i++) {
      cumulative += this.counts[i]!
      w.sample(`${name}_bucket`, { ...labels, le: String(this.bounds[i]) }, cumulative)
    }
    w.sample(`${name}_bucket`, { ...labels, le: '+Inf' }, this.count)
    w.sample(`${name}_sum`, labels, this.sum)
    w.sample(`${name}_count`, labels, this.count)
  }
}
