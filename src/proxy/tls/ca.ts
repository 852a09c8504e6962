/**
 * The proxy's own certificate authority, kept in `<dataDir>/ca/`: `ca.key`
 * (PKCS#8, mode 0600, directory 0700) and `ca.pem`. It is created on first
 * use and reused afterwards, so a client trusts it once.
 *
 * Creation is race-free between processes (the server and `session-proxy ca`
 * may start together): the key is published with link(2), which fails if
 * another process got there first, and the loser loads the winner's key. The
 * certificate is derived from whichever key is on disk and rewritten when it
 * does not match that key or is close to expiry.
 */
import { X509Certificate, createPrivateKey, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto'
import { chmodSync, linkSync, mkdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { ConfigError } from '../../errors.js'
import { createCertificate, keyIdentifier, publicOf, type DistinguishedName } from './x509.js'

const DAY = 86_400_000
/** Ten years: trusting a CA is a manual step, so it should not expire soon. */
const CA_LIFETIME = 3650 * DAY
/** Re-issued from the same key and name this long before it expires (clients then re-import it). */
const RENEW_BEFORE = 30 * DAY

export const CA_KEY_FILE = 'ca.key'
export const CA_CERT_FILE = 'ca.pem'

export class CertificateAuthority {
  readonly dir: string
  readonly key: KeyObject
  readonly publicKey: KeyObject
  readonly certPem: string
  readonly subject: DistinguishedName

  private constructor (dir: string, key: KeyObject, certPem: string, subject: DistinguishedName) {
    this.dir = dir
    this.key = key
    this.publicKey = publicOf(key)
    this.certPem = certPem
    this.subject = subject
  }

  get certPath (): string { return join(this.dir, CA_CERT_FILE) }

  /** Loads the CA from `dir`, creating it (and `dir`) when absent. */
  static loadOrCreate (dir: string, log?: Logger): CertificateAuthority {
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 })
    } catch (err) {
      throw new ConfigError(`cannot create the CA directory ${dir}: ${(err as Error).message}`, { cause: err })
    }
    const keyPath = join(dir, CA_KEY_FILE)
    const key = loadKey(keyPath, log) ?? createKey(keyPath, log)
    const subject = subjectFor(key)
    const certPath = join(dir, CA_CERT_FILE)
    let certPem = readCert(certPath, key)
    if (certPem === null) {
      certPem = createCertificate({
        subject,
        issuer: subject,
        publicKey: publicOf(key),
        signingKey: key,
        issuerPublicKey: publicOf(key),
        notBefore: new Date(Date.now() - DAY),
        notAfter: new Date(Date.now() + CA_LIFETIME),
        ca: true
      })
      const tmp = `${certPath}.${process.pid}.${randomBytes(4).toString('hex')}`
      writeFileSync(tmp, certPem, { mode: 0o644 })
      renameSync(tmp, certPath)
      log?.info({ cert: certPath }, 'wrote the CA certificate')
    }
    return new CertificateAuthority(dir, key, certPem, subject)
  }
}

function loadKey (keyPath: string, log?: Logger): KeyObject | null {
  let pem: string
  try {
    pem = readFileSync(keyPath, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
    throw new ConfigError(`cannot read the CA key ${keyPath}: ${(err as Error).message}`, { cause: err })
  }
  const mode = statSync(keyPath).mode & 0o777
  if ((mode & 0o077) !== 0) {
    // Anyone who reads this key can impersonate every site to our clients.
    chmodSync(keyPath, 0o600)
    log?.warn({ key: keyPath, was: mode.toString(8) }, 'the CA key was readable by others: set its mode to 0600')
  }
  try {
    return createPrivateKey(pem)
  } catch (err) {
    throw new ConfigError(`the CA key ${keyPath} is not a valid private key (delete the ca directory to create a new CA): ${(err as Error).message}`, { cause: err })
  }
}

function createKey (keyPath: string, log?: Logger): KeyObject {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string
  const tmp = `${keyPath}.${process.pid}.${randomBytes(4).toString('hex')}`
  writeFileSync(tmp, pem, { mode: 0o600 })
  try {
    linkSync(tmp, keyPath)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    unlinkSync(tmp)
    return loadKey(keyPath, log)!
  }
  unlinkSync(tmp)
  log?.info({ key: keyPath }, 'created a new CA key: clients must trust its certificate (GET /_session/ca.pem or session-proxy ca)')
  return privateKey
}

/** Unique per CA key, so two installs never show the same CA name. */
function subjectFor (key: KeyObject): DistinguishedName {
  const id = keyIdentifier(publicOf(key)).subarray(0, 4).toString('hex')
  const host = hostname().replace(/[^A-Za-z0-9.-]/g, '').slice(0, 24)
  return { organization: 'session-proxy', commonName: `session-proxy CA ${host} ${id}`.trim() }
}

/** The certificate on disk, or null when missing, not for this key or near expiry. */
function readCert (certPath: string, key: KeyObject): string | null {
  let pem: string
  try {
    pem = readFileSync(certPath, 'utf8')
  } catch {
    return null
  }
  try {
    const cert = new X509Certificate(pem)
    if (!cert.checkPrivateKey(key)) return null
    if (Date.parse(cert.validTo) - Date.now() < RENEW_BEFORE) return null
    return pem
  } catch {
    return null
  }
}
