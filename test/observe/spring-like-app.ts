/**
 * A small upstream that behaves like a Spring Security 6 form-login app, for
 * driving the proxy's login flow with real HTTP: anonymous JSESSIONID on the
 * login page with a hidden _csrf input, a new JSESSIONID on a successful
 * POST /login (session-fixation protection), 302 to /login when the session
 * is gone, and a CSRF token in the home page's <meta name="_csrf"> that
 * unsafe API calls must send in X-CSRF-TOKEN.
 */
import { randomBytes } from 'node:crypto'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { startUpstream, type Upstream } from '../helpers/proxy.js'

interface Session { user: string | null, csrf: string }

export interface SpringLikeApp extends Upstream {
  sessions: Map<string, Session>
  /** Ends every server session, as a restart or timeout would. */
  killSessions: () => void
}

const id = (): string => randomBytes(9).toString('hex').toUpperCase()

function cookies (req: IncomingMessage): Map<string, string> {
  const out = new Map<string, string>()
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=')
    if (eq > 0) out.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim())
  }
  return out
}

async function body (req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  for await (const c of req) chunks.push(c as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

export async function startSpringLikeApp (users: Record<string, string>): Promise<SpringLikeApp> {
  const sessions = new Map<string, Session>()
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    void (async () => {
      const url = new URL(req.url!, 'http://x')
      const jar = cookies(req)
      const sid = jar.get('JSESSIONID')
      let session = sid !== undefined ? sessions.get(sid) : undefined
      const setCookies: string[] = []
      const send = (status: number, headers: Record<string, string>, text = ''): void => {
        res.writeHead(status, { ...headers, ...(setCookies.length > 0 ? { 'set-cookie': setCookies } : {}) })
        res.end(text)
      }
      if (url.pathname === '/login' && req.method === 'GET') {
        if (session === undefined) {
          const fresh = id()
          session = { user: null, csrf: id() }
          sessions.set(fresh, session)
          setCookies.push(`JSESSIONID=${fresh}; Path=/; HttpOnly`)
        }
        send(200, { 'content-type': 'text/html' }, `<form method="post" action="/login"><input name="username"><input type="password" name="password"><input type="hidden" name="_csrf" value="${session.csrf}"></form>`)
        return
      }
      if (url.pathname === '/login' && req.method === 'POST') {
        const form = new URLSearchParams(await body(req))
        const user = form.get('username') ?? ''
        if (session === undefined || form.get('_csrf') !== session.csrf || users[user] === undefined || users[user] !== form.get('password')) {
          send(302, { location: '/login?error' })
          return
        }
        // Session-fixation protection: the authenticated session gets a new id.
        sessions.delete(sid!)
        const fresh = id()
        sessions.set(fresh, { user, csrf: id() })
        setCookies.push(`JSESSIONID=${fresh}; Path=/; HttpOnly`)
        send(302, { location: '/' })
        return
      }
      if (session?.user == null) {
        await body(req)
        send(302, { location: '/login' })
        return
      }
      if (url.pathname === '/') {
        send(200, { 'content-type': 'text/html; charset=utf-8' }, `<html><head><meta name="_csrf" content="${session.csrf}"><meta name="_csrf_header" content="X-CSRF-TOKEN"></head><body>Hello ${session.user}</body></html>`)
        return
      }
      if (url.pathname === '/api/me') {
        send(200, { 'content-type': 'application/json' }, JSON.stringify({ user: session.user }))
        return
      }
      if (url.pathname === '/api/prefs') {
        setCookies.push('theme=dark; Path=/; Max-Age=31536000; SameSite=Lax')
        send(204, {})
        return
      }
      if (url.pathname === '/api/rotate-csrf') {
        session.csrf = id()
        send(204, {})
        return
      }
      if (url.pathname === '/api/items' && req.method === 'POST') {
        const text = await body(req)
        if (req.headers['x-csrf-token'] !== session.csrf) {
          send(403, { 'content-type': 'text/plain' }, 'csrf')
          return
        }
        send(201, { 'content-type': 'application/json' }, JSON.stringify({ created: text, by: session.user }))
        return
      }
      send(404, { 'content-type': 'text/plain' }, 'not found')
    })()
  }
  const up = await startUpstream(handler)
  return { ...up, sessions, killSessions: () => sessions.clear() }
}
