/**
 * A small X.509 v3 certificate builder on node:crypto. Node 20 can parse and
 * verify certificates but not build them, and the libraries that can either
 * need RSA (slow key generation, node-forge) or a global Reflect polyfill
 * (@peculiar/x509 through tsyringe). A certificate is a DER SEQUENCE of a
 * handful of fixed fields, so the encoder below writes exactly those fields
 * and node:crypto signs them (ECDSA P-256 with SHA-256).
 *
 * Conformance targets: OpenSSL 3 with X509_V_FLAG_X509_STRICT (Python 3.13's
 * default), Java's PKIX and curl/GnuTLS. That is why the CA carries a
 * critical basicConstraints, keyUsage and a subject key id, and every leaf an
 * authority key id, a serverAuth EKU and a SAN.
 */
import { createHash, createPublicKey, randomBytes, sign, type KeyObject } from 'node:crypto'
import { isIP } from 'node:net'

// --- DER ----------------------------------------------------------------

function length (n: number): Buffer {
  if (n < 0x80) return Buffer.from([n])
  const bytes: number[] = []
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff)
  return Buffer.from([0x80 | bytes.length, ...bytes])
}

function tlv (tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content)
  return Buffer.concat([Buffer.from([tag]), length(body.length), body])
}

const seq = (...items: Buffer[]): Buffer => tlv(0x30, ...items)
const set = (...items: Buffer[]): Buffer => tlv(0x31, ...items)
const octets = (b: Buffer): Buffer => tlv(0x04, b)
const bool = (v: boolean): Buffer => tlv(0x01, Buffer.from([v ? 0xff : 0x00]))
const explicit = (n: number, inner: Buffer): Buffer => tlv(0xa0 | n, inner)

/** A non-negative INTEGER from big-endian magnitude bytes. */
function uint (magnitude: Buffer): Buffer {
  let i = 0
  while (i < magnitude.length - 1 && magnitude[i] === 0) i++
  let b = magnitude.subarray(i)
  if ((b[0]! & 0x80) !== 0) b = Buffer.concat([Buffer.from([0]), b])
  return tlv(0x02, b)
}

function oid (dotted: string): Buffer {
  const parts = dotted.split('.').map(Number)
  const out: number[] = [parts[0]! * 40 + parts[1]!]
  for (const p of parts.slice(2)) {
    const stack: number[] = [p & 0x7f]
    for (let v = Math.floor(p / 128); v > 0; v = Math.floor(v / 128)) stack.unshift((v & 0x7f) | 0x80)
    out.push(...stack)
  }
  return tlv(0x06, Buffer.from(out))
}

/** BIT STRING holding whole bytes (keys, signatures). */
const bits = (b: Buffer): Buffer => tlv(0x03, Buffer.from([0]), b)

/** Named-bit BIT STRING (keyUsage): DER drops trailing zero bits. */
function namedBits (flags: number[]): Buffer {
  let value = 0
  for (const f of flags) value |= 0x80 >> f
  let unused = 0
  while (unused < 7 && (value & (1 << unused)) === 0) unused++
  return tlv(0x03, Buffer.from([unused, value]))
}

/** UTCTime through 2049, GeneralizedTime after (RFC 5280 4.1.2.5). */
function time (d: Date): Buffer {
  const iso = d.toISOString().replace(/[-:T]/g, '').slice(0, 14) + 'Z'
  return d.getUTCFullYear() < 2050 ? tlv(0x17, Buffer.from(iso.slice(2), 'ascii')) : tlv(0x18, Buffer.from(iso, 'ascii'))
}

// --- X.509 ----------------------------------------------------------------

const OID = {
  ecdsaWithSha256: '1.2.840.10045.4.3.2',
  commonName: '2.5.4.3',
  organization: '2.5.4.10',
  subjectKeyId: '2.5.29.14',
  keyUsage: '2.5.29.15',
  subjectAltName: '2.5.29.17',
  basicConstraints: '2.5.29.19',
  authorityKeyId: '2.5.29.35',
  extKeyUsage: '2.5.29.37',
  serverAuth: '1.3.6.1.5.5.7.3.1'
} as const

export interface DistinguishedName {
  commonName?: string
  organization?: string
}

function name (dn: DistinguishedName): Buffer {
  const rdns: Buffer[] = []
  const utf8 = (s: string): Buffer => tlv(0x0c, Buffer.from(s, 'utf8'))
  if (dn.organization !== undefined) rdns.push(set(seq(oid(OID.organization), utf8(dn.organization))))
  if (dn.commonName !== undefined) rdns.push(set(seq(oid(OID.commonName), utf8(dn.commonName))))
  return seq(...rdns)
}

function extension (id: string, critical: boolean, value: Buffer): Buffer {
  return critical ? seq(oid(id), bool(true), octets(value)) : seq(oid(id), octets(value))
}

/** RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits. */
export function keyIdentifier (publicKey: KeyObject): Buffer {
  const spki = publicKey.export({ type: 'spki', format: 'der' })
  // For EC keys the SPKI is SEQUENCE { AlgorithmIdentifier, BIT STRING }: the
  // key bits are the BIT STRING's content after its unused-bits byte.
  const keyBits = readLastBitString(spki)
  return createHash('sha1').update(keyBits).digest()
}

function readLastBitString (der: Buffer): Buffer {
  // Walks the outer SEQUENCE's children and returns the last one's content.
  let i = 1
  i += lengthOfLength(der, i)
  let last: Buffer = Buffer.alloc(0)
  while (i < der.length) {
    const tag = der[i]!
    const [len, lenBytes] = readLength(der, i + 1)
    const start = i + 1 + lenBytes
    if (tag === 0x03) last = der.subarray(start + 1, start + len)
    i = start + len
  }
  return last
}

function lengthOfLength (der: Buffer, at: number): number {
  return readLength(der, at)[1]
}

function readLength (der: Buffer, at: number): [number, number] {
  const first = der[at]!
  if (first < 0x80) return [first, 1]
  const n = first & 0x7f
  let len = 0
  for (let k = 0; k < n; k++) len = len * 256 + der[at + 1 + k]!
  return [len, 1 + n]
}

export interface CertificateSpec {
  subject: DistinguishedName
  issuer: DistinguishedName
  /** The certified key. */
  publicKey: KeyObject
  /** The issuer's private key (the subject's own for a self-signed CA). */
  signingKey: KeyObject
  /** The issuer's public key, for the authority key id. */
  issuerPublicKey: KeyObject
  notBefore: Date
  notAfter: Date
  /** A CA certificate (may sign leaves, none below them), or a TLS server leaf. */
  ca: boolean
  /** Leaf only: DNS names and IP addresses. */
  altNames?: string[]
}

function ipBytes (ip: string): Buffer {
  if (isIP(ip) === 4) return Buffer.from(ip.split('.').map(Number))
  // Expands '::' so every group is written out; 16 bytes in all.
  const [head = '', tail = ''] = ip.split('::')
  const h = head === '' ? [] : head.split(':')
  const t = ip.includes('::') ? (tail === '' ? [] : tail.split(':')) : []
  const groups = ip.includes('::') ? [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t] : h
  const out = Buffer.alloc(16)
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2))
  return out
}

function altName (entry: string): Buffer {
  const bare = entry.replace(/^\[|\]$/g, '')
  if (isIP(bare) !== 0) return tlv(0x87, ipBytes(bare))
  return tlv(0x82, Buffer.from(entry, 'ascii'))
}

/** Builds and signs a certificate; returns it as PEM. */
export function createCertificate (spec: CertificateSpec): string {
  const serial = randomBytes(16)
  serial[0]! &= 0x7f
  const algorithm = seq(oid(OID.ecdsaWithSha256))
  const extensions: Buffer[] = []
  if (spec.ca) {
    extensions.push(
      extension(OID.basicConstraints, true, seq(bool(true), uint(Buffer.from([0])))),
      // keyCertSign (5), cRLSign (6)
      extension(OID.keyUsage, true, namedBits([5, 6])),
      extension(OID.subjectKeyId, false, octets(keyIdentifier(spec.publicKey)))
    )
  } else {
    extensions.push(
      extension(OID.basicConstraints, true, seq()),
      // digitalSignature (0): ECDHE key exchange signs with the leaf key.
      extension(OID.keyUsage, true, namedBits([0])),
      extension(OID.extKeyUsage, false, seq(oid(OID.serverAuth))),
      // An empty subject needs a critical SAN (RFC 5280 4.2.1.6).
      extension(OID.subjectAltName, spec.subject.commonName === undefined && spec.subject.organization === undefined, seq(...(spec.altNames ?? []).map(altName))),
      extension(OID.subjectKeyId, false, octets(keyIdentifier(spec.publicKey)))
    )
  }
  extensions.push(extension(OID.authorityKeyId, false, seq(tlv(0x80, keyIdentifier(spec.issuerPublicKey)))))
  const spki = spec.publicKey.export({ type: 'spki', format: 'der' })
  const tbs = seq(
    explicit(0, uint(Buffer.from([2]))),
    uint(serial),
    algorithm,
    name(spec.issuer),
    seq(time(spec.notBefore), time(spec.notAfter)),
    name(spec.subject),
    spki,
    explicit(3, seq(...extensions))
  )
  const signature = sign('sha256', tbs, spec.signingKey)
  const der = seq(tbs, algorithm, bits(signature))
  const b64 = der.toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '')
  return `-----BEGIN CERTIFICATE-----\n${b64}\n-----END CERTIFICATE-----\n`
}

/** The public half of a private key, as node:crypto derives it. */
export function publicOf (privateKey: KeyObject): KeyObject {
  return createPublicKey(privateKey)
}
