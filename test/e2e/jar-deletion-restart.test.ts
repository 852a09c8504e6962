/**
 * A server that deletes a cookie (Max-Age=0, or an Expires in the past, as a
 * logout does) must find it deleted after a restart too: the deletion is a
 * change the client was told about, and it reaches the journal before the
 * response is delivered, like any other cookie change. A kill -9 right after
 * the response must not bring the logged-out session back.
 */
import t from 'tap'
import { cleanup, curl, echoCookies, startProxy, startUpstream, tempDir } from '../helpers/proxy.js'

const enc = encodeURIComponent

t.test('a server-side deletion survives kill -9 and a restart', async (t) => {
  const up = await startUpstream(echoCookies())
  const dataDir = tempDir('sp-deletion-')
  t.teardown(async () => { await up.close(); cleanup(dataDir) })
  for (const deletion of ['sid=; Max-Age=0; Path=/', 'sid=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/']) {
    const first = await startProxy({ dataDir })
    await curl(['-x', first.url, `${up.origin}/login?set=${enc('sid=abc; Max-Age=3600; Path=/')}&set=${enc('keep=1; Max-Age=3600; Path=/')}`])
    const sent = await curl(['-x', first.url, `${up.origin}/check`])
    t.match(JSON.parse(sent.stdout).cookie, /sid=abc/, 'the session cookie is sent')
    await curl(['-x', first.url, `${up.origin}/logout?set=${enc(deletion)}`])
    const after = await curl(['-x', first.url, `${up.origin}/check`])
    t.equal(JSON.parse(after.stdout).cookie, 'keep=1', `${deletion}: deleted at once`)
    await first.kill9()
    const second = await startProxy({ dataDir })
    const restarted = await curl(['-x', second.url, `${up.origin}/check`])
    t.equal(JSON.parse(restarted.stdout).cookie, 'keep=1', `${deletion}: still deleted after kill -9 and a restart`)
    await second.stop()
  }
})
