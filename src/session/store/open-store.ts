/** The store `config.store` names: files under the data directory (null, "file") or Redis (redis://). */
import type { Logger } from 'pino'
import type { Config } from '../../config/schema.js'
import { CookieJarStore } from '../jar-files.js'
import { FileJarStore } from './file-store.js'
import type { JarStore } from './jar-store.js'
import { RedisJarStore } from './redis-store.js'

export function openJarStore (config: Config, log: Logger): JarStore {
  const store = config.store ?? 'file'
  if (store === 'file') return new FileJarStore(new CookieJarStore(config.dataDir!))
  return new RedisJarStore(store, config.redis, log)
}
