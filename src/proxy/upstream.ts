/**
 * The shared upstream pool (one undici Agent, explicit limits) and curl-style
 * --connect-to routing: the jar and Host header keep the requested
 * HOST:PORT, only the TCP connection goes to HOST2:PORT2.
 */
import { Agent, type Dispatcher } from 'undici'
import { ConfigError } from '../errors.js'
import type { PoolConfig } from '../config/schema.js'
import type { Target } from './target.js'

export interface ConnectToRule {
  host: string
  port: number | null
  toHost: string
  toPort: number | null
}

function splitHostPort (text: string, where: string): [string, number | null, string] {
  let host: string
  let rest: string
  if (text.startsWith('[')) {
    const close = text.indexOf(']')
    host = text.slice(0, close + 1)
    rest = text.slice(close + 1)
    if (!rest.startsWith(':')) throw new ConfigError(`${where}: expected ':' after ${host}`)
    rest = rest.slice(1)
  } else {
    const colon = text.indexOf(':')
    if (colon === -1) throw new ConfigError(`${where}: expected HOST:PORT:HOST2:PORT2`)
    host = text.slice(0, colon)
    rest = text.slice(colon + 1)
  }
  const colon = rest.indexOf(':')
  const portText = colon === -1 ? rest : rest.slice(0, colon)
  const after = colon === -1 ? '' : rest.slice(colon + 1)
  if (portText !== '' && (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535)) {
    throw new ConfigError(`${where}: "${portText}" is not a port number`)
  }
  return [host.toLowerCase(), portText === '' ? null : Number(portText), after]
}

/** Parses curl's --connect-to HOST:PORT:HOST2:PORT2 (empty parts mean "any" / "same"). */
export function parseConnectTo (spec: string, where = `connectTo "${spec}"`): ConnectToRule {
  const [host, port, rest] = splitHostPort(spec, where)
  const [toHost, toPort, extra] = splitHostPort(rest + ':', where)
  if (extra !== '') throw new ConfigError(`${where}: expected HOST:PORT:HOST2:PORT2`)
  return { host, port, toHost, toPort }
}

export class UpstreamPool {
  readonly agent: Agent
  private readonly rules: ConnectToRule[]
  private readonly origins = new Map<string, string>()

  constructor (pool: PoolConfig, connectTo: string[]) {
    this.rules = connectTo.map((spec, i) => parseConnectTo(spec, `connectTo[${i}] "${spec}"`))
    this.agent = new Agent({
      connections: pool.connectionsPerOrigin,
      pipelining: 1,
      keepAliveTimeout: pool.idleTimeoutMs,
      keepAliveMaxTimeout: pool.maxIdleTimeoutMs,
      headersTimeout: pool.headersTimeoutMs,
      bodyTimeout: pool.bodyTimeoutMs,
      connect: { timeout: pool.connectTimeoutMs }
    })
  }

  /** The origin undici connects to for a target, after --connect-to. */
  originFor (target: Target): string {
    const key = target.scheme === 'http' ? target.authority : 'https://' + target.authority
    let origin = this.origins.get(key)
    if (origin === undefined) {
      origin = this.resolve(target)
      if (this.origins.size > 10000) this.origins.clear()
      this.origins.set(key, origin)
    }
    return origin
  }

  /** Sends one request for `target`; `opts.origin` is filled in here. */
  dispatch (target: Target, opts: Omit<Dispatcher.DispatchOptions, 'origin'>, handler: Dispatcher.DispatchHandler): void {
    this.agent.dispatch({ ...opts, origin: this.originFor(target) }, handler)
  }

  /** Where a host:port actually connects, for error messages and logs. */
  dialTarget (target: Target): string {
    return this.originFor(target).replace(/^https?:\/\//, '')
  }

  async close (): Promise<void> {
    await this.agent.close()
  }

  private resolve (target: Target): string {
    for (const rule of this.rules) {
      if ((rule.host === '' || rule.host === target.host) && (rule.port === null || rule.port === target.port)) {
        return `${target.scheme}://${rule.toHost === '' ? target.host : rule.toHost}:${rule.toPort ?? target.port}`
      }
    }
    return `${target.scheme}://${target.host}:${target.port}`
  }
}
