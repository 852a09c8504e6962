/**
 * The web page at /_session/: static files shipped in the package's public/
 * folder (no build step), read once and kept in memory. The page talks only
 * to the admin API. Assets come from a fixed list in a Map: a name such as
 * `constructor` or `__proto__` is not a key of it, just a 404.
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import { SessionProxyError } from '../errors.js'

/** public/ at the package root, from src/admin (tsx) and dist/admin alike. */
export const PUBLIC_DIR = fileURLToPath(new URL('../../public/', import.meta.url))

/** The files under /_session/assets/, with their content types. */
export const ASSETS: ReadonlyMap<string, string> = new Map([
  ['app.js', 'text/javascript; charset=utf-8'],
  ['style.css', 'text/css; charset=utf-8']
])
const INDEX_TYPE = 'text/html; charset=utf-8'

export class AssetNotFoundError extends SessionProxyError {
  constructor () {
    super('SP_ADMIN_NOT_FOUND', 404, 'no such asset')
  }
}

export async function pageRoutes (app: FastifyInstance, opts: { dir?: string } = {}): Promise<void> {
  const dir = opts.dir ?? PUBLIC_DIR
  const cache = new Map<string, Buffer>()
  // A read failure (a broken install) throws a plain Error: the error
  // handler logs it with the path and tells the client only SP_INTERNAL.
  const load = (name: string): Buffer => {
    let body = cache.get(name)
    if (body === undefined) {
      body = readFileSync(dir + name)
      cache.set(name, body)
    }
    return body
  }
  const headers = {
    // The page runs no inline script and loads nothing from elsewhere.
    'content-security-policy': "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
    'x-content-type-options': 'nosniff',
    'cache-control': 'no-cache'
  }
  app.get('/_session', async (_req, reply) => reply.redirect('/_session/'))
  app.get('/_session/', async (_req, reply) => reply.headers(headers).type(INDEX_TYPE).send(load('index.html')))
  app.get<{ Params: { file: string } }>('/_session/assets/:file', async (req, reply) => {
    const type = ASSETS.get(req.params.file)
    if (type === undefined) throw new AssetNotFoundError()
    return await reply.headers(headers).type(type).send(load(req.params.file))
  })
}
