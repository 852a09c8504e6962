/**
 * The web page at /_session/: static files shipped in the package's public/
 * folder (no build step), read once and kept in memory. The page talks only
 * to the admin API.
 */
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'

/** public/ at the package root, from src/admin (tsx) and dist/admin alike. */
export const PUBLIC_DIR = fileURLToPath(new URL('../../public/', import.meta.url))

const FILES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'style.css': 'text/css; charset=utf-8'
}

export async function pageRoutes (app: FastifyInstance): Promise<void> {
  const cache = new Map<string, Buffer>()
  const load = (name: string): Buffer => {
    let body = cache.get(name)
    if (body === undefined) {
      body = readFileSync(PUBLIC_DIR + name)
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
  app.get('/_session/', async (_req, reply) => reply.headers(headers).type(FILES['index.html']!).send(load('index.html')))
  app.get<{ Params: { file: string } }>('/_session/assets/:file', async (req, reply) => {
    const type = FILES[req.params.file]
    if (type === undefined || req.params.file === 'index.html') return await reply.code(404).type('text/plain; charset=utf-8').send('session-proxy: no such asset\n')
    return await reply.headers(headers).type(type).send(load(req.params.file))
  })
}
