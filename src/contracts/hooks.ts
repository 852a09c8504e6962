/**
 * The compiled hook lists every entry runs (src/pipeline/hooks.ts builds and
 * runs them). Kept at the bottom so ProxyDeps can carry them.
 */
import type { Hook } from './addon.js'

export type HookName = 'request' | 'response' | 'error'

export interface HookEntry {
  /** The addon's name (or file), for SP_ADDON_ERROR messages and logs. */
  readonly addon: string
  readonly fn: Hook
}

/**
 * One list per hook, in load order, compiled once at start for every
 * profile, and once per profile when an addon is scoped to some (`profiles`).
 * `size` is the number of hooks of all kinds: 0 means no addon hooks at all,
 * and the hot path checks only that.
 */
export interface CompiledHooks {
  readonly size: number
  /** An async hook that has not settled after this long fails (limits.addonHookTimeoutMs). */
  readonly timeoutMs: number
  readonly request: readonly HookEntry[]
  readonly response: readonly HookEntry[]
  readonly error: readonly HookEntry[]
  /**
   * The lists for one profile: only the addons whose `profiles` match it,
   * compiled the first time the profile (object) asks and kept with it.
   * The same object when no addon is scoped to profiles.
   */
  readonly forProfile: (profile: { readonly name: string }) => CompiledHooks
}
