/**
 * Shared by the addon and entry-matrix e2e tests: the README's example addons,
 * writing addon modules and config files into a temp dir, a raw WebSocket
 * handshake through the proxy, and an upstream that logs in with a form.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { ROOT, startUpstream, type Upstream } from './proxy.js'
import { connectRaw, readResponse, type RawResponse } from './raw-client.js'

export const EXAMPLES = join(ROOT, 'examples', 'addons')
export const TAG_ADDON = join(EXAMPLES, 'tag-requests.mjs')
export const FIXTURE_ADDON = join(EXAMPLES, 'answer-from-fixture.mjs')
export const FIXTURE_BODY = JSON.parse('{ "status": "ok", "source": "fixture" }') as unknown

/** Writes `code` as `dir/name` and returns the path. */
export function writeModule (dir: string, name: string, code: string): string {
  const file = join(dir, name)
  writeFileSync(file, code)
  return file
}

/** Writes a JSON config file into `dir` and returns its path. */
export function writeConfig (dir: string, config: Record<string, unknown>): string {
  const file = join(dir, 'config.json')
  writeFileSync(file, JSON.stringify(config))
  return file
}

/**
 * A WebSocket handshake through the proxy on a raw socket (absolute-form
 * target): the answer's head, and the socket closed after it.
 */
export async function rawHandshake (proxyPort: number, url: string, extra: Record<string, string> = {}): Promise<RawResponse> {
  const s = await connectRaw(proxyPort)
  const u = new URL(url)
  const lines = [`GET ${url} HTTP/1.1`, `Host: ${u.host}`, 'Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', ...Object.entries(extra).map(([k, v]) => `${k}: ${v}`)]
  s.write(lines.join('\r\n') + '\r\n\r\n')
  try {
    return await readResponse(s, 10_000)
  } finally {
    s.destroy()
  }
}

/**
 * An app behind a form login: POST /login sets `sid=ok`; every other path
 * answers 401 without it and echoes the request headers with it.
 */
export async function startLoginApp (): Promise<Upstream> {
  return await startUpstream((req, res) => {
    if (req.url === '/login' && req.method === 'POST') {
      req.resume()
      req.on('end', () => { res.writeHead(200, { 'set-cookie': 'sid=ok; Path=/', 'content-type': 'text/plain' }); res.end('welcome') })
      return
    }
    if (!/(^|; )sid=ok(;|$)/.test(req.headers.cookie ?? '')) { res.writeHead(401, { 'content-type': 'text/plain' }); res.end('log in'); return }
    res.writeHead(200, { 'content-type': 'application/json' })
    res.end(JSON.stringify({ tag: req.headers['x-addon-tag'] ?? null, cookie: req.headers.cookie ?? null }))
  })
}

/** The autopilot rule for startLoginApp. */
export function loginRule (app: Upstream): Record<string, unknown> {
  return {
    match: `127.0.0.1:${app.port}`,
    login: { username: 'u', password: { value: 'p' }, steps: [{ name: 'sign in', method: 'POST', url: '/login', form: { user: '{{username}}', pass: '{{password}}' }, expect: { status: [200] } }] },
    loggedOut: { status: [401] }
  }
}
