import { readFileSync } from 'node:fs'
import t from 'tap'
import { CONFIG_JSON_ENV, ENV_VARIABLES, configFromEnv, envNameOf, loadConfig } from '../../src/config/load.js'
import { ConfigError } from '../../src/errors.js'
import { ROOT } from '../helpers/proxy.js'

const base = { SESSION_PROXY_DATA_DIR: '/tmp/sp-env-test' }

t.test('every config key, sections included, has one SESSION_PROXY_* variable', async (t) => {
  const names = ENV_VARIABLES.map((v) => v.name)
  t.equal(new Set(names).size, names.length, 'no two keys map to one name')
  const keys = new Set(ENV_VARIABLES.map((v) => v.key.join('.')))
  for (const key of ['host', 'port', 'allowClients', 'proxyAuth', 'proxyAuth.users', 'profiles', 'hosts', 'admin.token', 'admin.hosts', 'reverseForward',
    'limits.maxHeaderBytes', 'limits.shutdownTimeoutMs', 'pool.connectionsPerOrigin', 'upstream.tls', 'connect.allowedPorts', 'events.sessionCookies']) {
    t.ok(keys.has(key), `${key} has a variable`)
  }
  t.equal(envNameOf(['limits', 'maxHeaderBytes']), 'SESSION_PROXY_LIMITS_MAX_HEADER_BYTES')
  t.equal(envNameOf(['allowClients']), 'SESSION_PROXY_ALLOW_CLIENTS')
  const doc = readFileSync(`${ROOT}/docs/environment.md`, 'utf8')
  for (const name of [...names, CONFIG_JSON_ENV]) t.ok(doc.includes(`\`${name}\``), `docs/environment.md documents ${name} (a new config key needs its row there)`)
})

t.test('scalars, lists, booleans, secrets and JSON structures', async (t) => {
  const { config } = loadConfig({
    env: {
      ...base,
      SESSION_PROXY_HOST: '0.0.0.0',
      SESSION_PROXY_PORT: '9090',
      SESSION_PROXY_ALLOW_CLIENTS: '10.0.0.0/8, 172.16.0.0/12,192.168.0.0/16',
      SESSION_PROXY_CONNECT_ALLOWED_PORTS: '443,8443 9443',
      SESSION_PROXY_CONNECT_INTERCEPT: 'off',
      SESSION_PROXY_REVERSE_FORWARD: 'TRUE',
      SESSION_PROXY_LIMITS_MAX_HEADER_BYTES: '32768',
      SESSION_PROXY_ADMIN_TOKEN: 's3cret',
      SESSION_PROXY_ADMIN_HOSTS: '["sidecar"]',
      SESSION_PROXY_PROXY_AUTH_USERS: '{"alice":{"env":"ALICE_PW"}}',
      SESSION_PROXY_PROFILES: '{"alice":{"capture":{"enabled":true}}}',
      SESSION_PROXY_UPSTREAM_NO_PROXY: 'null',
      SESSION_PROXY_POOL: '{"idleTimeoutMs":1000,"connectTimeoutMs":2000}',
      SESSION_PROXY_POOL_IDLE_TIMEOUT_MS: '3000'
    }
  })
  t.equal(config.host, '0.0.0.0')
  t.equal(config.port, 9090)
  t.same(config.allowClients, ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16'], 'comma- or space-separated')
  t.same(config.connect.allowedPorts, [443, 8443, 9443])
  t.equal(config.connect.intercept, false)
  t.equal(config.reverseForward, true)
  t.equal(config.limits.maxHeaderBytes, 32768)
  t.equal(config.limits.shutdownTimeoutMs, 10000, 'the other limits keep their defaults')
  t.same(config.admin.token, { value: 's3cret' }, 'a plain secret is its inline value')
  t.same(config.admin.hosts, ['sidecar'], 'a list may be a JSON array')
  t.same(config.proxyAuth, { users: { alice: { env: 'ALICE_PW' } } })
  t.same(config.profiles, { alice: { capture: { enabled: true } } })
  t.equal(config.upstream.noProxy, null)
  t.equal(config.pool.idleTimeoutMs, 3000, 'the single key wins over its section')
  t.equal(config.pool.connectTimeoutMs, 2000, 'the section sets the rest')
  t.equal(config.pool.connectionsPerOrigin, 128, 'unnamed keys keep the defaults')
})

t.test('SESSION_PROXY_CONFIG_JSON is a whole config, under the single variables', async (t) => {
  const { config } = loadConfig({ env: { ...base, SESSION_PROXY_CONFIG_JSON: '{"port":7000,"allowClients":["10.1.0.0/16"],"admin":{"token":{"env":"T"}}}', SESSION_PROXY_PORT: '7001' } })
  t.equal(config.port, 7001)
  t.same(config.allowClients, ['10.1.0.0/16'])
  t.same(config.admin.token, { env: 'T' })
  t.same(loadConfig({ env: { ...base, SESSION_PROXY_ADMIN_TOKEN: '{"file":"/run/secrets/token"}' } }).config.admin.token, { file: '/run/secrets/token' }, 'a secret may be a reference')
})

t.test('flags still win over the environment; empty means unset', async (t) => {
  const { config } = loadConfig({ env: { ...base, SESSION_PROXY_ALLOW_CLIENTS: '10.0.0.0/8', SESSION_PROXY_LOG_LEVEL: '' }, flags: { allowClients: ['127.0.0.1'] } })
  t.same(config.allowClients, ['127.0.0.1'])
  t.equal(config.logLevel, 'info')
})

t.test('Kubernetes service-link variables of a Service named session-proxy are not settings', async (t) => {
  const links = {
    SESSION_PROXY_SERVICE_HOST: '10.0.0.7',
    SESSION_PROXY_SERVICE_PORT: '8080',
    SESSION_PROXY_SERVICE_PORT_HTTP: '8080',
    SESSION_PROXY_PORT: 'tcp://10.0.0.7:8080',
    SESSION_PROXY_PORT_8080_TCP: 'tcp://10.0.0.7:8080',
    SESSION_PROXY_PORT_8080_TCP_PROTO: 'tcp',
    SESSION_PROXY_PORT_8080_TCP_PORT: '8080',
    SESSION_PROXY_PORT_8080_TCP_ADDR: '10.0.0.7'
  }
  t.same(configFromEnv(links), {})
  t.equal(loadConfig({ env: { ...base, ...links } }).config.port, 8080, 'the default port stays')
})

t.test('every error names the variable', async (t) => {
  const cases: Array<[Record<string, string>, RegExp]> = [
    [{ SESSION_PROXY_PORT: 'eighty' }, /SESSION_PROXY_PORT: "eighty" is not a port number/],
    [{ SESSION_PROXY_POOL_IDLE_TIMEOUT_MS: 'soon' }, /SESSION_PROXY_POOL_IDLE_TIMEOUT_MS: "soon" is not an integer/],
    [{ SESSION_PROXY_POOL_IDLE_TIMEOUT_MS: '0' }, /environment variable SESSION_PROXY_POOL_IDLE_TIMEOUT_MS:\n {2}- pool\.idleTimeoutMs: must be >= 1/],
    [{ SESSION_PROXY_CONNECT_ALLOWED_PORTS: '443,x' }, /SESSION_PROXY_CONNECT_ALLOWED_PORTS: "x" is not an integer/],
    [{ SESSION_PROXY_METRICS_ENABLED: 'maybe' }, /SESSION_PROXY_METRICS_ENABLED: "maybe" is not a boolean/],
    [{ SESSION_PROXY_PROFILES: '{alice' }, /SESSION_PROXY_PROFILES: is not valid JSON/],
    [{ SESSION_PROXY_PROXY_AUTH_USERS: '{"bad name!":{"value":"x"}}' }, /environment variable SESSION_PROXY_PROXY_AUTH_USERS:\n[^]*proxyAuth\.users: key "bad name!"/],
    [{ SESSION_PROXY_ADMIN_HOSTS: '[1' }, /SESSION_PROXY_ADMIN_HOSTS: is not valid JSON/],
    [{ SESSION_PROXY_ADMIN_HOSTS: '["a",' }, /SESSION_PROXY_ADMIN_HOSTS: is not valid JSON/],
    [{ SESSION_PROXY_EVENTS_SESSION_COOKIES: '[' }, /SESSION_PROXY_EVENTS_SESSION_COOKIES: is not valid JSON/],
    [{ SESSION_PROXY_LOG_LEVEL: 'loud' }, /environment variable SESSION_PROXY_LOG_LEVEL:\n {2}- logLevel: must be one of/],
    [{ SESSION_PROXY_ALLOW_CLIENT: '10.0.0.0/8' }, /SESSION_PROXY_ALLOW_CLIENT: unknown environment variable/],
    [{ SESSION_PROXY_CONFIG_JSON: '[1]' }, /SESSION_PROXY_CONFIG_JSON: the top level must be a JSON object/],
    [{ SESSION_PROXY_CONFIG_JSON: '{"prot":1}' }, /environment variable SESSION_PROXY_CONFIG_JSON:\n {2}- prot: unknown key/]
  ]
  for (const [env, message] of cases) {
    t.throws(() => configFromEnv(env), message, Object.keys(env)[0])
    t.throws(() => configFromEnv(env), ConfigError)
  }
})
