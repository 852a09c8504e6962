/**
 * GET /_session/ca.pem: the certificate clients must trust for intercepted
 * HTTPS. Only the certificate is served; the key never leaves the data dir.
 */
import type { FastifyInstance } from 'fastify'

export interface CaRouteDeps {
  certPem: string
}

export async function caRoute (app: FastifyInstance, deps: CaRouteDeps): Promise<void> {
  app.get('/_session/ca.pem', async (_req, reply) => {
    void reply
      .type('application/x-pem-file')
      .header('content-disposition', 'inline; filename="session-proxy-ca.pem"')
      .header('cache-control', 'no-cache')
    return deps.certPem
  })
}
