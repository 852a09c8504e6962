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

/** limits.addonHookTimeoutMs's default. */
const DEFAULT_TIMEOUT_MS = 30_000

export const NO_HOOKS: CompiledHooks = Object.freeze({ size: 0, timeoutMs: DEFAULT_TIMEOUT_MS, request: [], response: [], error: [] })

export interface LoadedAddon {
  /** `addon.name`, or the file it came from. */
  name: string
  addon: Addon
}

export function compileHooks (addons: readonly LoadedAddon[], timeoutMs = DEFAULT_TIMEOUT_MS): CompiledHooks {
  if (addons.length === 0) return NO_HOOKS
  const lists: Record<HookName, HookEntry[]> = { request: [], response: [], error: [] }
  for (const { name, addon } of addons) {
    for (const hook of ['request', 'response', 'error'] as const) {
      const fn = addon[hook] as Hook | undefined
      // A response (error) list only ever runs on flows that have a response (error).
      if (typeof fn === 'function') lists[hook].push({ addon: name, fn: fn.bind(addon) })
    }
  }
  const size = lists.request.length + lists.response.length + lists.error.length
  return size === 0 ? NO_HOOKS : Object.freeze({ size, timeoutMs, ...lists })
}

export function addonError (entry: HookEntry, hook: HookName, err: unknown): SessionProxyError {
  const detail = err instanceof Error ? err.message : String(err)
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
    try {
      result = entry.fn(flow)
    } catch (err) {
      throw addonError(entry, hook, err)
    } finally {
      flow.inRequest = false
    }
    if (isThenable(result)) return continueAsync(list, hook, flow, i, result, hooks.timeoutMs)
  }
  return undefined
}

/** A hook that never settles must not hold its request (and its connection) forever. */
async function settled (pending: PromiseLike<unknown>, timeoutMs: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    // Not unref'd: it is cleared as soon as the hook settles.
    timer = setTimeout(() => reject(new Error(`it did not settle within ${timeoutMs} ms (limits.addonHookTimeoutMs)`)), timeoutMs)
  })
  try {
    await Promise.race([pending, timeout])
  } finally {
    clearTimeout(timer)
  }
}

async function continueAsync (list: readonly HookEntry[], hook: HookName, flow: Flow, at: number, pending: PromiseLike<unknown>, timeoutMs: number): Promise<void> {
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
  for (let i = at + 1; i < list.length; i++) {
    if (request && flow.answer !== null) return
    const entry = list[i]!
    flow.inRequest = request
    try {
      const result = entry.fn(flow)
      if (isThenable(result)) await settled(result, timeoutMs)
    } catch (err) {
      throw addonError(entry, hook, err)
    } finally {
      flow.inRequest = false
    }
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
