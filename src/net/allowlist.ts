/** Client allowlist (IPs and CIDRs) for a proxy listening beyond loopback. */
import { BlockList, isIP } from 'node:net'
import { ConfigError } from '../errors.js'

export function isLoopbackHost (host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase()
  return h === 'localhost' || h === '::1' || h.startsWith('127.') || h.startsWith('::ffff:127.')
}

export class ClientAllowlist {
  private readonly list = new BlockList()

  constructor (entries: string[]) {
    entries.forEach((entry, i) => {
      const [addr, bits] = entry.split('/') as [string, string | undefined]
      const family = isIP(addr)
      if (family === 0) throw new ConfigError(`allowClients[${i}]: "${entry}" is not an IP address or CIDR`)
      const type = family === 6 ? 'ipv6' : 'ipv4'
      if (bits === undefined) {
        this.list.addAddress(addr, type)
      } else {
        const prefix = Number(bits)
        if (!/^\d+$/.test(bits) || prefix > (family === 6 ? 128 : 32)) throw new ConfigError(`allowClients[${i}]: "${entry}" has an invalid prefix length`)
        this.list.addSubnet(addr, prefix, type)
      }
    })
  }

  allows (remote: string): boolean {
    if (isLoopbackHost(remote)) return true
    if (remote.startsWith('::ffff:')) return this.list.check(remote.slice(7), 'ipv4')
    return this.list.check(remote, isIP(remote) === 6 ? 'ipv6' : 'ipv4')
  }
}
