/**
 * Test PKI and HTTPS upstreams: a CA of the test's own (not the proxy's) and
 * server certificates signed by it, built with the proxy's certificate
 * module, so tests need no openssl calls and no fixed files.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import http from 'node:http'
import https from 'node:https'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createCertificate, publicOf } from '../../src/proxy/tls/x509.js'
import { serveUpstream, tempDir, type Upstream, type UpstreamHandler } from './proxy.js'

export interface TestCa {
  certPem: string
  key: KeyObject
  /** The CA certificate written to a temp file (for --upstream-ca, --cacert). */
  file: string
  dir: string
  /** A server certificate for `names` (DNS names or IPs), signed by this CA. */
  issue: (names: string[]) => { certPem: string, keyPem: string }
}

const DAY = 86_400_000

export function createTestCa (name = 'test upstream CA'): TestCa {
  const key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey
  const subject = { organization: 'session-proxy tests', commonName: name }
  const certPem = createCertificate({ subject, issuer: subject, publicKey: publicOf(key), signingKey: key, issuerPublicKey: publicOf(key), notBefore: new Date(Date.now() - DAY), notAfter: new Date(Date.now() + 30 * DAY), ca: true })
  const dir = tempDir('sp-pki-')
  const file = join(dir, 'ca.pem')
  writeFileSync(file, certPem)
  return {
    certPem,
    key,
    file,
    dir,
    issue: (names) => {
      const leaf = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey
      const cert = createCertificate({ subject: { commonName: names[0]! }, issuer: subject, publicKey: publicOf(leaf), signingKey: key, issuerPublicKey: publicOf(key), notBefore: new Date(Date.now() - DAY), notAfter: new Date(Date.now() + 30 * DAY), ca: false, altNames: names })
      return { certPem: cert, keyPem: leaf.export({ type: 'pkcs8', format: 'pem' }) as string }
    }
  }
}

/** A real HTTPS server on a free loopback port, with a certificate for `names`. */
export async function startHttpsUpstream (handler: UpstreamHandler, ca: TestCa, names = ['localhost', '127.0.0.1']): Promise<Upstream> {
  const { certPem, keyPem } = ca.issue(names)
  return await serveUpstream((record) => https.createServer({ key: keyPem, cert: certPem }, record) as unknown as http.Server, handler, (port) => `https://localhost:${port}`)
}
