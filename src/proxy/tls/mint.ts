/**
 * Leaf certificates for intercepted hosts, signed by the proxy's CA. One EC
 * P-256 key serves every leaf of this process (only the signature differs
 * per host, about a tenth of a millisecond), and the TLS contexts are kept
 * in an LRU map so a busy proxy does not grow without bound.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto'
import { isIP } from 'node:net'
import tls from 'node:tls'
import type { CertificateAuthority } from './ca.js'
import { createCertificate, publicOf } from './x509.js'

const DAY = 86_400_000
/** Below the 398 days browsers and Apple platforms accept for a leaf. */
const LEAF_LIFETIME = 397 * DAY
/** Longest CN allowed by RFC 5280 (ub-common-name); longer names go in the SAN only. */
const MAX_CN = 64

const HOSTNAME = /^(?:[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?\.?)+$/

export class LeafMinter {
  private readonly ca: CertificateAuthority
  private readonly key: KeyObject
  private readonly publicKey: KeyObject
  private readonly keyPem: string
  private readonly contexts = new Map<string, tls.SecureContext>()
  private readonly maxEntries: number

  constructor (ca: CertificateAuthority, maxEntries = 1000) {
    this.ca = ca
    this.key = generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey
    this.publicKey = publicOf(this.key)
    this.keyPem = this.key.export({ type: 'pkcs8', format: 'pem' }) as string
    this.maxEntries = maxEntries
  }

  get size (): number { return this.contexts.size }

  /** The TLS context presenting a certificate for `host` (a DNS name or IP literal). */
  contextFor (host: string): tls.SecureContext {
    const name = host.toLowerCase().replace(/^\[|\]$/g, '')
    let ctx = this.contexts.get(name)
    if (ctx !== undefined) {
      // Map order is insertion order: re-inserting marks it most recent.
      this.contexts.delete(name)
      this.contexts.set(name, ctx)
      return ctx
    }
    ctx = tls.createSecureContext({ key: this.keyPem, cert: this.mint(name) + this.ca.certPem })
    this.contexts.set(name, ctx)
    if (this.contexts.size > this.maxEntries) this.contexts.delete(this.contexts.keys().next().value!)
    return ctx
  }

  /** A PEM leaf certificate for one DNS name or IP address. */
  mint (name: string): string {
    if (isIP(name) === 0 && !HOSTNAME.test(name)) throw new Error(`cannot mint a certificate for ${JSON.stringify(name.slice(0, 100))}: not a host name or IP address`)
    const now = Date.now()
    return createCertificate({
      subject: name.length <= MAX_CN ? { commonName: name } : {},
      issuer: this.ca.subject,
      publicKey: this.publicKey,
      signingKey: this.ca.key,
      issuerPublicKey: this.ca.publicKey,
      notBefore: new Date(now - DAY),
      notAfter: new Date(now + LEAF_LIFETIME),
      ca: false,
      altNames: [name]
    })
  }

  /**
   * For tls.TLSSocket's SNICallback: a name the client sends that differs
   * from the CONNECT host gets its own certificate; a name we cannot mint
   * for falls back to the CONNECT host's context (undefined here).
   */
  readonly sniCallback = (servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void): void => {
    try {
      cb(null, this.contextFor(servername))
    } catch {
      cb(null, undefined)
    }
  }
}
