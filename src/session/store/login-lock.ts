/**
 * The login under the shared store's lock (Redis): one proxy logs in, the
 * others wait and use the cookies it stored. Without a shared store the
 * login just runs (one per process, as LoginState already ensures).
 */
import type { Profile } from '../profiles.js'
import type { LoginLock } from './jar-store.js'

/**
 * Runs `login` under the lock of (`profile`, `origin`). The holder's cookie
 * writes are acknowledged before the lock is released, so a waiter that then
 * re-reads the profile has them. A waiter gets `joined()` instead of a run.
 */
export async function underLoginLock<T> (lock: LoginLock | null, profile: Profile, origin: string, login: () => Promise<T>, joined: () => T): Promise<T> {
  if (lock === null) return await login()
  const outcome = await lock.exclusive(profile.name, origin, async () => {
    const value = await login()
    if (profile.pendingWrite !== null) await profile.pendingWrite
    return value
  })
  return outcome.ran ? outcome.value : joined()
}
