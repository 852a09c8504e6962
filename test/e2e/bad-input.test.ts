/** Every bad input gets a clear error that says what was wrong, and the proxy keeps serving. */
import { writeFileSync } from 'node:fs'
import net from 'node:net'
import { join } from 'node:path'
import t from 'tap'
import { cleanup, curl, echoCookies, runCli, startProxy, startUpstream, tempDir, viaProxy } from '../helpers/proxy.js'

async function rawRequest (port: number, text: string): Promise<string> {
  return await new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.end(text))
    let out = ''
    s.on('data', (c: Buffer) => { out += c.toString('latin1') })
    s.on('close', () => resolve(out))
    s.on('error', reject)
  })
}

t.test('bad requests get a 4xx that names the problem; the proxy keeps serving', async (t) => {
  const up = await startUpstream(echoCookies())
  const proxy = await startProxy()
  t.teardown(async () => { await proxy.stop(); await up.close(); cleanup(proxy.dataDir) })

  const badProfile = await curl(['-x', `http://bad%20name@127.0.0.1:${proxy.port}`, '-i', `${up.origin}/`])
  t.equal(badProfile.status, 400)
  t.match(badProfile.stdout, /x-session-proxy-error: SP_PROFILE_INVALID/)
  t.match(badProfile.stdout, /invalid profile name "bad name": use 1-64 letters/)

  const badHeader = await curl(['-x', proxy.url, '-H', 'X-Session-Profile: ../../etc', `${up.origin}/`])
  t.equal(badHeader.status, 400)
  t.match(badHeader.stdout, /invalid profile name "\.\.\/\.\.\/etc"/)

  const scheme = await viaProxy(proxy.port, `${up.origin}/`, { headers: { 'proxy-authorization': 'Bearer abc' } })
  t.equal(scheme.status, 400)
  t.match(scheme.body, /Proxy-Authorization scheme "Bearer" is not supported/)

  const ftp = await rawRequest(proxy.port, 'GET ftp://example.com/ HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n')
  t.match(ftp, /^HTTP\/1.1 400/)
  t.match(ftp, /is not an absolute http:\/\/ or https:\/\/ URL/)

  const badPort = await rawRequest(proxy.port, 'GET http://127.0.0.1:99999/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  t.match(badPort, /^HTTP\/1.1 400/)
  t.match(badPort, /invalid port "99999"/)

  const badHost = await rawRequest(proxy.port, 'GET http://exa$mple.com/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  t.match(badHost, /invalid host/)

  const userinfo = await rawRequest(proxy.port, 'GET http://user@example.com/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  t.match(userinfo, /must not contain user info/)

  const garbage = await rawRequest(proxy.port, 'NOT HTTP AT ALL\r\n\r\n')
  t.match(garbage, /^HTTP\/1.1 400/, 'unparseable bytes get a 400 from the HTTP parser')

  const notProxy = await curl([`${proxy.url}/some/page`])
  t.equal(notProxy.status, 404)
  t.match(notProxy.stdout, /this is an HTTP forward proxy/)

  const ok = await curl(['-x', proxy.url, `${up.origin}/?set=still%3Dalive`])
  t.equal(ok.status, 200, 'after all that, the proxy still serves')
  t.equal(proxy.proc.exitCode, null, 'and never crashed')
})

t.test('upstream failures map to 502/504 with a body naming the host', async (t) => {
  const closed = net.createServer()
  await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve))
  const deadPort = (closed.address() as net.AddressInfo).port
  await new Promise<void>((resolve) => closed.close(() => resolve()))
  const resetter = net.createServer((s) => { s.once('data', () => s.resetAndDestroy()) })
  await new Promise<void>((resolve) => resetter.listen(0, '127.0.0.1', resolve))
  const silent = net.createServer(() => {})
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve))
  const proxy = await startProxy({ config: { pool: { headersTimeoutMs: 500 } } })
  t.teardown(async () => {
    await proxy.stop()
    resetter.close()
    silent.close()
    cleanup(proxy.dataDir)
  })

  const refused = await curl(['-x', proxy.url, '-i', `http://127.0.0.1:${deadPort}/`])
  t.equal(refused.status, 502)
  t.match(refused.stdout, new RegExp(`upstream 127.0.0.1:${deadPort}: connection refused`))
  t.match(refused.stdout, /x-session-proxy-error: SP_UPSTREAM_REFUSED/)

  const dns = await curl(['-x', proxy.url, '-i', 'http://no-such-host.invalid/'])
  t.equal(dns.status, 502)
  t.match(dns.stdout, /upstream no-such-host.invalid: DNS lookup failed/)

  const reset = await curl(['-x', proxy.url, '-i', `http://127.0.0.1:${(resetter.address() as net.AddressInfo).port}/`])
  t.equal(reset.status, 502)
  t.match(reset.stdout, /SP_UPSTREAM_RESET/)

  const timeout = await curl(['-x', proxy.url, '-i', `http://127.0.0.1:${(silent.address() as net.AddressInfo).port}/`])
  t.equal(timeout.status, 504)
  t.match(timeout.stdout, /timed out waiting for the response headers/)
})

t.test('a bad config or flag stops the start with a message naming the key', async (t) => {
  const dir = tempDir()
  t.teardown(() => cleanup(dir))
  const write = (name: string, text: string): string => { const f = join(dir, name); writeFileSync(f, text); return f }

  const typo = runCli(['--config', write('typo.yaml', 'port: 8080\nprofles: {}\n')])
  t.equal(typo.status, 2)
  t.match(typo.stderr, /typo.yaml/)
  t.match(typo.stderr, /profles: unknown key/)

  const wrongType = runCli(['--config', write('type.yaml', 'pool:\n  connectionsPerOrigin: lots\n')])
  t.match(wrongType.stderr, /pool.connectionsPerOrigin: must be integer/)

  const badYaml = runCli(['--config', write('bad.yaml', 'port: [1, 2\n')])
  t.match(badYaml.stderr, /is not valid YAML/)

  const badJson = runCli(['--config', write('bad.json', '{"port": 1,}')])
  t.match(badJson.stderr, /is not valid JSON/)

  const missing = runCli(['--config', join(dir, 'nope.yaml')])
  t.match(missing.stderr, /cannot read config file .*nope.yaml: no such file/)

  const badConnectTo = runCli(['--connect-to', 'just-a-host', '--port', '0', '--data-dir', dir])
  t.match(badConnectTo.stderr, /connectTo.0: has the wrong form \(expected HOST:PORT:HOST2:PORT2\)/)

  const badPort = runCli(['--port', 'eighty'])
  t.match(badPort.stderr, /--port: "eighty" is not a port number/)

  const badEnv = runCli(['--data-dir', dir], { SESSION_PROXY_LOG_LEVEL: 'loud' })
  t.match(badEnv.stderr, /logLevel: must be one of fatal, error, warn, info, debug, trace, silent/)

  const unknownFlag = runCli(['--prot', '1'])
  t.match(unknownFlag.stderr, /Unknown option '--prot'/)

  const missingSecret = runCli(['--port', '0', '--data-dir', dir, '--config', write('secret.yaml', 'hosts:\n  - match: api.example.com\n    auth: { type: bearer, token: { env: NOT_SET_ANYWHERE } }\n')])
  t.match(missingSecret.stderr, /hosts\[0\].auth.token: environment variable NOT_SET_ANYWHERE is not set/)

  const open = runCli(['--host', '0.0.0.0', '--port', '0', '--data-dir', dir])
  t.equal(open.status, 2)
  t.match(open.stderr, /refusing to listen on 0.0.0.0: that is not a loopback address, and neither proxyAuth nor allowClients is configured/)

  const help = runCli(['--help'])
  t.equal(help.status, 0)
  t.match(help.stdout, /--connect-to H:P:H2:P2/)
  t.match(runCli(['--version']).stdout, /^\d+\.\d+\.\d+\n$/)
})

t.test('flags win over environment, environment over the file', async (t) => {
  const up = await startUpstream(echoCookies())
  const dir = tempDir()
  const file = join(dir, 'c.yaml')
  writeFileSync(file, 'logLevel: silent\nport: 1\n')
  t.teardown(async () => { await up.close(); cleanup(dir) })
  const proxied = (lines: string[]): boolean => lines.some((l) => l.includes('"msg":"proxied"'))

  const envWins = await startProxy({ args: ['--config', file], logLevel: null, env: { SESSION_PROXY_LOG_LEVEL: 'info', SESSION_PROXY_PORT: '2' } })
  t.not(envWins.port, 1)
  t.not(envWins.port, 2, 'the --port flag (0) won over env and file')
  await curl(['-x', envWins.url, `${up.origin}/`])
  await envWins.stop()
  t.ok(proxied(envWins.output), 'env logLevel info won over the file\'s silent')

  const flagWins = await startProxy({ args: ['--config', file], logLevel: 'error', env: { SESSION_PROXY_LOG_LEVEL: 'info' } })
  await curl(['-x', flagWins.url, `${up.origin}/`])
  await flagWins.stop()
  t.notOk(proxied(flagWins.output), 'the --log-level flag won over env')
  cleanup(envWins.dataDir, flagWins.dataDir)
})
