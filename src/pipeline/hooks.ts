/**
 * Compiling the loaded addons into hook lists, and running one list over a
 * flow. A list of sync hooks runs synchronously (no promise, no tick); the
 * first hook that returns a thenable turns the rest of the run async. A
 * hook that throws or rejects becomes SP_ADDON_ERROR (502), naming the addon
 * and the hook.
 */
import type { Addon, Hook } from '../contracts/addon.js'
import type { CompiledHooks, HookEntry, HookName } from '../contracts/hooks.js'
import { SessionProxyError } from '../errors.js'
import type { Flow } from './flow.js'
import { globToRegExp } from '../config/name-glob.js'

/** limits.addonHookTimeoutMs's default. */
const DEFAULT_TIMEOUT_MS = 30_000

export const NO_HOOKS: CompiledHooks = Object.freeze({ size: 0, timeoutMs: DEFAULT_TIMEOUT_MS, request: [], response: [], error: [], forProfile: () => NO_HOOKS })

export interface LoadedAddon {
  /** `addon.name`, or the file it came from. */
  name: string
  addon: Addon
}

type ForProfile = CompiledHooks['forProfile']

function compileLists (addons: readonly LoadedAddon[], timeoutMs: number, forProfile: ForProfile): CompiledHooks {
  const lists: Record<HookName, HookEntry[]> = { request: [], response: [], error: [] }
  for (const { name, addon } of addons) {
    for (const hook of ['request', 'response', 'error'] as const) {
      const fn = addon[hook] as Hook | undefined
      // A response (error) list only ever runs on flows that have a response (error).
      if (typeof fn === 'function') lists[hook].push({ addon: name, fn: fn.bind(addon) })
    }
  }
  const size = lists.request.length + lists.response.length + lists.error.length
  return size === 0 ? NO_HOOKS : Object.freeze({ size, timeoutMs, ...lists, forProfile })
}

/**
 * The hook lists of every loaded addon. When some addon names `profiles`,
 * `forProfile` finds the list of one profile (the addons that apply to it)
 * the first time that profile asks, and keeps it with the profile object
 * (a WeakMap: an unloaded profile takes its entry with it). Lists are shared
 * between profiles that match the same addons, so at most 2^(scoped addons)
 * distinct lists exist, however many profiles there are.
 */
export function compileHooks (addons: readonly LoadedAddon[], timeoutMs = DEFAULT_TIMEOUT_MS): CompiledHooks {
  if (addons.length === 0) return NO_HOOKS
  const scoped = addons.map(({ addon }) => addon.profiles === undefined ? null : addon.profiles.map(globToRegExp))
  if (scoped.every((patterns) => patterns === null)) {
    const all: CompiledHooks = compileLists(addons, timeoutMs, () => all)
    return all
  }
  const bySet = new Map<string, CompiledHooks>()
  const byProfile = new WeakMap<object, CompiledHooks>()
  const forProfile: ForProfile = (profile) => {
    const known = byProfile.get(profile)
    if (known !== undefined) return known
    let key = ''
    for (const patterns of scoped) key += patterns === null || patterns.some((p) => p.test(profile.name)) ? '1' : '0'
    let hooks = bySet.get(key)
    if (hooks === undefined) {
      hooks = compileLists(addons.filter((_, i) => key[i] === '1'), timeoutMs, forProfile)
      bySet.set(key, hooks)
    }
    byProfile.set(profile, hooks)
    return hooks
  }
  // The whole list: its size tells the hot path whether any addon exists at all.
  return compileLists(addons, timeoutMs, forProfile)
}

/** What an addon threw, as text; never throws itself (a value whose toString throws, a null-prototype object). */
export function describeThrown (err: unknown): string {
  try {
    if (err instanceof Error) return String(err.message)
    if (err === undefined || err === null) return `it threw ${String(err)}`
    // A thrown string is shown as it is, like an Error's message.
    if (typeof err === 'string') return err.slice(0, 500)
    return `it threw a non-Error: ${typeof err} ${String(err).slice(0, 500)}`
  } catch {
    return `it threw a non-Error (${typeof err}) that cannot be shown`
  }
}

export function addonError (entry: HookEntry, hook: HookName, err: unknown): SessionProxyError {
  const detail = describeThrown(err)
  return new SessionProxyError('SP_ADDON_ERROR', 502, `addon "${entry.addon}" failed in its ${hook} hook: ${detail}`, { cause: err })
}

function isThenable (value: unknown): value is PromiseLike<unknown> {
  return value !== null && (typeof value === 'object' || typeof value === 'function') && typeof (value as { then?: unknown }).then === 'function'
}

/**
 * Runs the `hook` list of `hooks` over `flow` in order. Returns undefined when every hook was
 * synchronous, else a promise; either way a failing hook throws (or
 * rejects) SP_ADDON_ERROR. Request hooks stop at the first that answers
 * with flow.respond().
 */
export function runHooks (hooks: CompiledHooks, hook: HookName, flow: Flow): Promise<void> | undefined {
  const list = hooks[hook]
  const request = hook === 'request'
  for (let i = 0; i < list.length; i++) {
    if (request && flow.answer !== null) return undefined
    const entry = list[i]!
    let result: unknown
    flow.inRequest = request
    const before = flow.responses
    try {
      result = entry.fn(flow)
    } catch (err) {
      throw addonError(entry, hook, err)
    } finally {
      flow.inRequest = false
    }
    if (isThenable(result)) return continueAsync(list, hook, flow, i, result, hooks.timeoutMs, before)
    checkOneAnswer(entry, hook, flow, before)
  }
  return undefined
}

/** Two respond() calls in one hook: which answer it meant is unknowable, so neither is sent. */
function checkOneAnswer (entry: HookEntry, hook: HookName, flow: Flow, before: number): void {
  if (flow.responses - before > 1) throw addonError(entry, hook, new Error('flow.respond() was called more than once'))
}

/** A hook that never settles must not hold its request (and its connection) forever. */
async function settled (pending: PromiseLike<unknown>, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    // Not unref'd: it is cleared as soon as the hook settles.
    timer = setTimeout(() => reject(new Error(`it did not settle within ${timeoutMs} ms (limits.addonHookTimeoutMs)`)), timeoutMs)
  })
  try {
    // Promise.resolve adopts a hostile thenable safely: a then() that throws rejects, a second settle is ignored.
    await Promise.race([Promise.resolve(pending), timeout])
  } finally {
    clearTimeout(timer)
  }
}

async function continueAsync (list: readonly HookEntry[], hook: HookName, flow: Flow, at: number, pending: PromiseLike<unknown>, timeoutMs: number, before: number): Promise<void> {
  const request = hook === 'request'
  // respond() stays allowed while an async request hook runs.
  flow.inRequest = request
  try {
    await settled(pending, timeoutMs)
  } catch (err) {
    throw addonError(list[at]!, hook, err)
  } finally {
    flow.inRequest = false
  }
  checkOneAnswer(list[at]!, hook, flow, before)
  for (let i = at + 1; i < list.length; i++) {
    if (request && flow.answer !== null) return
    const entry = list[i]!
    flow.inRequest = request
    const start = flow.responses
    try {
      const result = entry.fn(flow)
      if (isThenable(result)) await settled(result, timeoutMs)
    } catch (err) {
      throw addonError(entry, hook, err)
    } finally {
      flow.inRequest = false
    }
    checkOneAnswer(entry, hook, flow, start)
  }
}

/**
 * Error hooks: the client's answer is decided already, so what they throw is
 * only reported (through `onFailure`), never raised.
 */
export function runErrorHooks (hooks: CompiledHooks, flow: Flow, onFailure: (err: SessionProxyError) => void): void {
  if (hooks.error.length === 0) return
  try {
    const done = runHooks(hooks, 'error', flow)
    if (done !== undefined) done.catch(onFailure)
  } catch (err) {
    onFailure(err as SessionProxyError)
  }
}
