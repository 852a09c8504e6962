/** The proxy's CA and the leaf certificates it mints (src/proxy/tls/ca.ts, mint.ts). */
import { X509Certificate } from 'node:crypto'
import { chmodSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { CertificateAuthority } from '../../../src/proxy/tls/ca.js'
import { LeafMinter } from '../../../src/proxy/tls/mint.js'
import { cleanup, tempDir } from '../../helpers/proxy.js'

t.test('CA: created once, reloaded, key kept private', async (t) => {
  const dir = tempDir('sp-ca-')
  t.teardown(() => cleanup(dir))
  const a = CertificateAuthority.loadOrCreate(join(dir, 'ca'))
  const b = CertificateAuthority.loadOrCreate(join(dir, 'ca'))
  t.equal(b.certPem, a.certPem, 'the second start reuses the CA')
  const cert = new X509Certificate(a.certPem)
  t.ok(cert.ca)
  t.ok(cert.verify(a.publicKey), 'self-signed')
  t.equal(statSync(join(dir, 'ca', 'ca.key')).mode & 0o777, 0o600)
  t.equal(statSync(join(dir, 'ca')).mode & 0o777, 0o700)

  chmodSync(join(dir, 'ca', 'ca.key'), 0o644)
  CertificateAuthority.loadOrCreate(join(dir, 'ca'))
  t.equal(statSync(join(dir, 'ca', 'ca.key')).mode & 0o777, 0o600, 'a key readable by others is tightened')

  writeFileSync(join(dir, 'ca', 'ca.pem'), 'garbage')
  const c = CertificateAuthority.loadOrCreate(join(dir, 'ca'))
  t.ok(new X509Certificate(c.certPem).checkPrivateKey(c.key), 'a broken certificate is re-issued from the same key')
})

t.test('leaf certificates', async (t) => {
  const dir = tempDir('sp-ca-')
  t.teardown(() => cleanup(dir))
  const ca = CertificateAuthority.loadOrCreate(join(dir, 'ca'))
  const caCert = new X509Certificate(ca.certPem)
  const minter = new LeafMinter(ca, 3)
  for (const name of ['example.com', 'a.b.example.com', '127.0.0.1', '::1', `${'x'.repeat(60)}.example.com`]) {
    const leaf = new X509Certificate(minter.mint(name))
    t.ok(leaf.verify(ca.publicKey), `${name}: signed by the CA`)
    t.ok(leaf.checkIssued(caCert), `${name}: issued by the CA`)
    t.notOk(leaf.ca)
    if (name.includes(':') || /^\d/.test(name)) t.equal(leaf.checkIP(name), name, `${name}: IP SAN`)
    else t.equal(leaf.checkHost(name), name, `${name}: DNS SAN`)
    t.equal(leaf.checkHost('other.test'), undefined, `${name}: no other name`)
  }
  t.throws(() => minter.mint('bad name!'), /not a host name/)
  for (const h of ['a.test', 'b.test', 'c.test', 'd.test']) minter.contextFor(h)
  t.equal(minter.size, 3, 'the context cache is bounded')
  t.equal(minter.contextFor('d.test'), minter.contextFor('D.TEST'), 'cached per lower-cased name')
})
