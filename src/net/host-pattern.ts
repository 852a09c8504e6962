/**
 * Host patterns as the config writes them (`api.example.com`,
 * `*.example.com`, `*`, each optionally with `:port`), with the same meaning
 * as the `hosts[].match` rules: `*.example.com` covers subdomains only.
 */
export interface HostPattern {
  readonly source: string
  matches: (host: string, port: number) => boolean
}

export function compileHostPattern (source: string): HostPattern {
  let pattern = source.toLowerCase()
  let port: number | null = null
  const portMatch = /:(\d+)$/.exec(pattern)
  if (portMatch !== null && !pattern.endsWith(']')) {
    port = Number(portMatch[1])
    pattern = pattern.slice(0, portMatch.index)
  }
  const portOk = (p: number): boolean => port === null || port === p
  if (pattern === '*') return { source, matches: (_h, p) => portOk(p) }
  if (pattern.startsWith('*.')) {
    const suffix = pattern.slice(1)
    return { source, matches: (h, p) => portOk(p) && h.endsWith(suffix) }
  }
  // IPv6 literals compare without brackets, as CONNECT and URLs differ there.
  const bare = pattern.replace(/^\[|\]$/g, '')
  return { source, matches: (h, p) => portOk(p) && h.replace(/^\[|\]$/g, '') === bare }
}

export function matchesAny (patterns: readonly HostPattern[], host: string, port: number): HostPattern | null {
  for (const p of patterns) if (p.matches(host, port)) return p
  return null
}
