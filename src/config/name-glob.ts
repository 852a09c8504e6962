/**
 * Glob patterns over profile names (`vu-*`, `load-?`), shared by `profiles:`
 * keys (src/session/profile-settings.ts) and an addon's `profiles` list
 * (src/pipeline/hooks.ts). `*` is any run of characters, `?` exactly one;
 * everything else is literal, and the whole name must match.
 */
export function isPattern (key: string): boolean {
  return key.includes('*') || key.includes('?')
}

export function globToRegExp (glob: string): RegExp {
  let source = ''
  for (const c of glob) {
    if (c === '*') source += '.*'
    else if (c === '?') source += '.'
    else source += c.replace(/[.\\+^$()[\]{}|-]/g, '\\$&')
  }
  return new RegExp(`^${source}$`, 's')
}
