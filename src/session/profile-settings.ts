/**
 * Which block of `profiles:` a profile gets. A key is an exact profile name
 * or a glob pattern: `*` stands for any run of characters (also none), `?`
 * for exactly one; every other character stands for itself, case-sensitive,
 * like profile names. An exact key wins over every pattern; among patterns
 * the one with the longest literal prefix (the characters before its first
 * `*` or `?`) wins, and on a tie the one first in the file.
 */
import type { ProfileConfig } from '../config/schema.js'
import { globToRegExp, isPattern } from '../config/name-glob.js'
import { credentialsFile } from './credentials.js'

export { PROFILE_KEY_PATTERN } from '../config/schema.js'
export { globToRegExp, isPattern }

export interface ProfileMatch {
  /** The key of the block that applies (the name itself, or the pattern). */
  key: string
  settings: ProfileConfig
  /** The key is the profile's name (not a pattern). */
  exact: boolean
}

interface CompiledPattern {
  key: string
  regex: RegExp
  prefix: number
  order: number
}

const compiled = new WeakMap<Record<string, ProfileConfig>, CompiledPattern[]>()

function patternsOf (profiles: Record<string, ProfileConfig>): CompiledPattern[] {
  let list = compiled.get(profiles)
  if (list === undefined) {
    list = Object.keys(profiles).filter(isPattern).map((key, order) => ({
      key,
      regex: globToRegExp(key),
      prefix: /^[^*?]*/.exec(key)![0].length,
      order
    }))
    // Most specific first: longest literal prefix, then file order.
    list.sort((a, b) => b.prefix - a.prefix || a.order - b.order)
    compiled.set(profiles, list)
  }
  return list
}

/** The block of `profiles` that applies to the profile `name`, or undefined. */
export function matchProfileSettings (profiles: Record<string, ProfileConfig>, name: string): ProfileMatch | undefined {
  if (Object.hasOwn(profiles, name) && !isPattern(name)) return { key: name, settings: profiles[name]!, exact: true }
  for (const p of patternsOf(profiles)) {
    if (p.regex.test(name)) return { key: p.key, settings: profiles[p.key]!, exact: false }
  }
  return undefined
}

/**
 * Whether a matched profile is kept loaded (never unloaded, like a profile
 * declared by name). A pattern can match any number of names, so a profile
 * it matched is kept only when the block logs in (its autopilot keeps login
 * state in memory) and has a credentials file with a row for it: the rows
 * bound how many are kept. Every other matched profile unloads like an
 * undeclared one (its cookies are on disk and come back).
 */
export function isPinned (match: ProfileMatch | undefined, name: string, hasRow: (match: ProfileMatch, name: string) => boolean): boolean {
  if (match === undefined) return false
  if (match.exact) return true
  const autopilot = match.settings.autopilot
  return autopilot !== undefined && autopilot.length > 0 && match.settings.credentials !== undefined && hasRow(match, name)
}

/** The settings of `name` and whether it is pinned; what the profile registry asks. */
export function resolveProfileSettings (profiles: Record<string, ProfileConfig>, name: string): { settings: ProfileConfig | undefined, pinned: boolean } {
  const match = matchProfileSettings(profiles, name)
  const pinned = isPinned(match, name, (m, n) => credentialsFile(m.settings.credentials!, `profiles.${m.key}.credentials`).has(n))
  return { settings: match?.settings, pinned }
}
