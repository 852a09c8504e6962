#!/usr/bin/env node
/**
 * The container's HEALTHCHECK (the slim image has no curl): GET
 * /_session/health from inside the container, on loopback when the proxy
 * listens on a wildcard address, with the admin token when one is configured.
 * The address, port and token come from the same SESSION_PROXY_* variables and
 * config file (SESSION_PROXY_CONFIG) as the server's, so set the port there,
 * not with a --port flag the check cannot see. Exit 0: healthy, 1: not
 * (Docker's contract); the one line printed lands in `docker inspect`.
 */
import http from 'node:http'
import { loadConfig } from './config/load.js'
import { readSecret } from './session/host-defaults.js'

const TIMEOUT_MS = 4000
const WILDCARD_OR_LOOPBACK = new Set(['0.0.0.0', '::', '[::]', 'localhost', '127.0.0.1'])

async function check (): Promise<string> {
  const { config } = loadConfig()
  const host = WILDCARD_OR_LOOPBACK.has(config.host) ? '127.0.0.1' : config.host.replace(/^\[(.*)\]$/, '$1')
  const headers: Record<string, string> = {}
  if (config.admin.token !== null) headers.authorization = `Bearer ${readSecret(config.admin.token, 'admin.token')}`
  return await new Promise((resolve, reject) => {
    const req = http.get({ host, port: config.port, path: '/_session/health', headers, timeout: TIMEOUT_MS }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { if (body.length < 4096) body += chunk })
      res.on('error', reject)
      res.on('end', () => {
        if (res.statusCode !== 200) { reject(new Error(`HTTP ${res.statusCode ?? '?'}: ${body.slice(0, 200)}`)); return }
        resolve(body.slice(0, 200))
      })
    })
    req.on('timeout', () => req.destroy(new Error(`no answer in ${TIMEOUT_MS} ms`)))
    req.on('error', reject)
  })
}

check().then((body) => {
  process.stdout.write(`healthy: ${body}\n`)
}, (err: unknown) => {
  process.stdout.write(`unhealthy: ${(err as Error).message}\n`)
  process.exitCode = 1
})
