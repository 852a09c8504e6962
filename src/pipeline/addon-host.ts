/**
 * Loads the user's addons at start (`addons:` in the config, `--addon FILE`):
 * each is an ES module whose default export is an addon object, or a
 * function (sync or async) returning one, called once with { config, log }.
 * Anything wrong with one (missing file, syntax error, a factory that
 * throws, hooks that are not functions) is SP_ADDON_LOAD and the proxy
 * refuses to start, naming the file.
 */
import { existsSync } from 'node:fs'
import { basename } from 'node:path'
import { pathToFileURL } from 'node:url'
import type { Logger } from 'pino'
import type { Addon, AddonContext, AddonLogger } from '../contracts/addon.js'
import { SessionProxyError } from '../errors.js'
import { PROFILE_KEY_PATTERN } from '../config/schema.js'
import { describeThrown, type LoadedAddon } from './hooks.js'

const HOOKS = ['request', 'response', 'error'] as const
const PROFILE_NAME_OR_GLOB = new RegExp(PROFILE_KEY_PATTERN)

/** limits.addonStartTimeoutMs's default. */
const DEFAULT_START_TIMEOUT_MS = 30_000

export class AddonLoadError extends SessionProxyError {
  constructor (file: string, message: string, options?: { cause?: unknown }) {
    super('SP_ADDON_LOAD', 0, `cannot load addon ${file}: ${message}`, options)
    this.name = 'AddonLoadError'
  }
}

function isObject (value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object'
}

function checkAddon (file: string, value: unknown): Addon {
  if (!isObject(value)) throw new AddonLoadError(file, `its default export must be an addon object or a function returning one, not ${value === null ? 'null' : typeof value}`)
  if (value.name !== undefined && typeof value.name !== 'string') throw new AddonLoadError(file, '"name" must be a string')
  for (const hook of HOOKS) {
    if (value[hook] !== undefined && typeof value[hook] !== 'function') throw new AddonLoadError(file, `"${hook}" must be a function`)
  }
  if (value.profiles !== undefined) {
    const profiles = value.profiles
    if (!Array.isArray(profiles) || profiles.length === 0 || !profiles.every((p) => typeof p === 'string' && PROFILE_NAME_OR_GLOB.test(p))) {
      throw new AddonLoadError(file, '"profiles" must be a non-empty list of profile names or glob patterns (letters, digits, . _ - * ?)')
    }
  }
  const unknown = Object.keys(value).filter((k) => k !== 'name' && k !== 'profiles' && !(HOOKS as readonly string[]).includes(k))
  if (!HOOKS.some((h) => typeof value[h] === 'function') && unknown.length > 0) {
    throw new AddonLoadError(file, `it has no request, response or error hook (it has ${unknown.slice(0, 5).join(', ')})`)
  }
  return value as Addon
}

class StartTimeout extends Error {
  constructor (ms: number) {
    super(`its factory function did not return within ${ms} ms (limits.addonStartTimeoutMs)`)
  }
}

/** limits.addonStartTimeoutMs from the config the addons get, else its default. */
function startTimeoutOf (config: Readonly<Record<string, unknown>>): number {
  const limits = config.limits as { addonStartTimeoutMs?: unknown } | undefined
  const ms = limits?.addonStartTimeoutMs
  return typeof ms === 'number' && Number.isInteger(ms) && ms > 0 ? ms : DEFAULT_START_TIMEOUT_MS
}

export async function loadAddon (file: string, config: Readonly<Record<string, unknown>>, log: Logger): Promise<LoadedAddon> {
  const startTimeoutMs = startTimeoutOf(config)
  let mod: Record<string, unknown>
  // Checked first rather than read from import()'s error: its code and text
  // depend on the loader hooks in the process (seen under the test runner).
  if (!existsSync(file)) throw new AddonLoadError(file, 'no such file')
  try {
    mod = await import(pathToFileURL(file).href) as Record<string, unknown>
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    throw new AddonLoadError(file, e.code === 'ERR_MODULE_NOT_FOUND' && e.message.includes(file) ? 'no such file' : e.message, { cause: err })
  }
  if (!('default' in mod)) throw new AddonLoadError(file, 'the module has no default export')
  let exported = mod.default
  const fallbackName = basename(file)
  if (typeof exported === 'function') {
    const context: AddonContext = { config, log: log.child({ addon: fallbackName }) as unknown as AddonLogger }
    let timer: NodeJS.Timeout | undefined
    try {
      // A factory that never settles would hold the start forever: bounded by limits.addonStartTimeoutMs.
      const hung = new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => reject(new StartTimeout(startTimeoutMs)), startTimeoutMs)
      })
      exported = await Promise.race([(async () => await (exported as (c: AddonContext) => unknown)(context))(), hung])
    } catch (err) {
      if (err instanceof StartTimeout) throw new AddonLoadError(file, err.message)
      throw new AddonLoadError(file, `its factory function failed: ${describeThrown(err)}`, { cause: err })
    } finally {
      clearTimeout(timer)
    }
  }
  const addon = checkAddon(file, exported)
  return { name: addon.name ?? fallbackName, addon }
}

/** Loads every file in order; the first failure stops the start. */
export async function loadAddons (files: readonly string[], config: Readonly<Record<string, unknown>>, log: Logger): Promise<LoadedAddon[]> {
  const out: LoadedAddon[] = []
  for (const file of files) {
    const loaded = await loadAddon(file, config, log)
    log.info({ addon: loaded.name, file, hooks: HOOKS.filter((h) => typeof loaded.addon[h] === 'function') }, 'addon loaded')
    out.push(loaded)
  }
  return out
}
