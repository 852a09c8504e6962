/**
 * The careful autopilot against the real Tomcat 10 fixture (issue 9): one
 * value per header name when a host default and the autopilot both set
 * X-CSRF-Token (RestCsrfPreventionFilter reads the first one), and a password
 * file removed after start that fails only the logins that need it.
 */
import t from 'tap'
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { isTomcatInstalled, startTomcat, type TomcatInstance } from '../helpers/tomcat.js'
import { adminGet, cleanup, curl, startProxy, tempDir, type ProxyProcess } from '../helpers/proxy.js'

if (!isTomcatInstalled()) {
  t.fail('tomcat10 is not installed: .ci/run installs it (apt-get install tomcat10)')
} else {
  let tomcat: TomcatInstance
  let proxy: ProxyProcess
  const dir = tempDir('sp-tomcat-secret-')
  const passwordFile = join(dir, 'alice')

  t.before(async () => {
    tomcat = await startTomcat()
    writeFileSync(passwordFile, 'alice-secret\n')
    const rule = (password: Record<string, string>): Record<string, unknown> => ({
      match: `127.0.0.1:${tomcat.port}`,
      baseUrl: `${tomcat.baseUrl}/app`,
      login: { preset: 'tomcat-form', username: 'alice', password, startPath: '/api/whoami' },
      csrf: [{ preset: 'tomcat' }]
    })
    proxy = await startProxy({
      env: { ALICE_PASSWORD: 'alice-secret' },
      config: {
        profiles: {
          // Someone set the fetch word as a default header for the host.
          fetchdefault: { hosts: [{ match: `127.0.0.1:${tomcat.port}`, headers: { 'X-CSRF-Token': 'Fetch' } }], autopilot: [rule({ env: 'ALICE_PASSWORD' })] },
          filed: { autopilot: [rule({ file: passwordFile })] }
        }
      }
    })
  })
  t.teardown(async () => {
    await proxy?.stop()
    await tomcat?.stop()
    if (proxy !== undefined) cleanup(proxy.dataDir)
    cleanup(dir)
  })

  const as = (profile: string): string[] => ['-x', `http://${profile}@127.0.0.1:${proxy.port}`]

  t.test('a host default and the autopilot setting X-CSRF-Token: one value, the autopilot\'s nonce', async (t) => {
    const me = await curl([...as('fetchdefault'), `${tomcat.appUrl}/api/whoami`])
    t.equal(me.status, 200, me.stdout.slice(0, 200))
    const post = await curl([...as('fetchdefault'), '-H', 'content-type: application/json', '--data-binary', '{"name":"x"}', `${tomcat.appUrl}/api/items`])
    t.equal(post.status, 201, `Tomcat accepted the POST: it saw the nonce, not the default's "Fetch" (${post.stdout.slice(0, 200)})`)
    t.match(JSON.parse(post.stdout), { created: true, user: 'alice' })
  })

  t.test('a password file removed after start fails the login that needs it, with the key, not the profile', async (t) => {
    rmSync(passwordFile)
    const hello = await curl([...as('filed'), `${tomcat.appUrl}/public/hello`])
    t.equal(hello.status, 200, 'a request that needs no login still works for the profile')
    t.equal(hello.stdout.trim(), 'hello')
    t.equal((await adminGet(proxy, '/_session/profiles/filed/cookies')).status, 200, 'and so does the admin API')
    const me = await curl([...as('filed'), '-D', join(dir, 'h.txt'), `${tomcat.appUrl}/api/whoami`])
    t.equal(me.status, 502)
    t.match(me.stdout, /login "tomcat-form" failed at step "secret": profiles\.filed\.autopilot\[0\]\.login\.password: cannot read secret file/)
    t.notOk(me.stdout.includes('alice-secret'))
  })
}
