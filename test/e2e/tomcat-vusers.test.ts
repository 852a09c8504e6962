/**
 * Virtual users for load tests (issue 13): 50 profiles vu-1 … vu-50 from one
 * `profiles: { "vu-*": ... }` block and a credentials CSV, driven by wrk
 * against the real Tomcat 10 fixture. Each virtual user is logged in once,
 * as its own Tomcat user, and logged in once more after the server ends
 * every session.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { isTomcatInstalled, startTomcat, type TomcatInstance, type TomcatUser } from '../helpers/tomcat.js'
import { adminGet, cleanup, curl, run, startProxy, tempDir, type ProxyProcess } from '../helpers/proxy.js'

const N = 50
const vus = Array.from({ length: N }, (_, i) => i + 1)
/** Tomcat's users are not named like the profiles: the CSV maps one to the other. */
const userOf = (n: number): string => `user${n}`
/** A few passwords need CSV quoting (a comma, a quote). */
const passwordOf = (n: number): string => n % 10 === 1 ? `p,w"${n}` : `pw-${n}`
const csvField = (s: string): string => /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s

interface Metric { logins: Map<string, number>, relogins: Map<string, number> }

function parseMetrics (text: string): Metric {
  const read = (family: string): Map<string, number> => {
    const out = new Map<string, number>()
    const re = new RegExp(`^${family}\\{([^}]*)\\} (\\d+)$`, 'gm')
    for (const m of text.matchAll(re)) {
      const labels = Object.fromEntries([...m[1]!.matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]))
      if (labels['outcome'] === 'succeeded') out.set(labels['profile']!, Number(m[2]))
    }
    return out
  }
  return { logins: read('session_proxy_logins_total'), relogins: read('session_proxy_relogins_total') }
}

if (!isTomcatInstalled()) {
  t.fail('tomcat10 is not installed: .ci/run installs it (apt-get install tomcat10)')
} else {
  let tomcat: TomcatInstance
  let proxy: ProxyProcess
  const dir = tempDir('sp-vusers-')
  const csvPath = join(dir, 'users.csv')
  const luaPath = join(dir, 'vusers.lua')

  t.before(async () => {
    const users: TomcatUser[] = vus.map((n) => ({ username: userOf(n), password: passwordOf(n), roles: ['user'] }))
    tomcat = await startTomcat({ users })
    // A BOM, CRLF line ends and quoted fields: what a spreadsheet writes.
    writeFileSync(csvPath, '\ufeffprofile,username,password\r\n' + vus.map((n) => `vu-${n},${userOf(n)},${csvField(passwordOf(n))}`).join('\r\n') + '\r\n')
    // startPath: Tomcat answers the first request to the page a login started
    // from with the request it saved then (its headers and body), not the
    // client's replayed one; starting elsewhere keeps every answer the client's.
    proxy = await startProxy({
      config: {
        profiles: {
          'vu-*': {
            credentials: { file: csvPath },
            autopilot: [{ match: `127.0.0.1:${tomcat.port}`, baseUrl: `${tomcat.baseUrl}/app`, login: { preset: 'tomcat-form', startPath: '/secure/start' } }]
          }
        }
      }
    })
    // Round-robin over the virtual users; each response must be the right user for its own request.
    writeFileSync(luaPath, `
local n = ${N}
local target = "${tomcat.appUrl}/api/me"
local authority = "127.0.0.1:${tomcat.port}"
local i = 0
local b64chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local function b64 (data)
  return ((data:gsub(".", function (x)
    local r, byte = "", x:byte()
    for k = 8, 1, -1 do r = r .. (byte % 2 ^ k - byte % 2 ^ (k - 1) > 0 and "1" or "0") end
    return r
  end) .. "0000"):gsub("%d%d%d?%d?%d?%d?", function (x)
    if #x < 6 then return "" end
    local c = 0
    for k = 1, 6 do c = c + (x:sub(k, k) == "1" and 2 ^ (6 - k) or 0) end
    return b64chars:sub(c + 1, c + 1)
  end) .. ({ "", "==", "=" })[#data % 3 + 1])
end
local requests = {}
for k = 1, n do
  requests[k] = wrk.format("GET", target, {
    ["Host"] = authority,
    ["Proxy-Authorization"] = "Basic " .. b64("vu-" .. k .. ":"),
    ["X-Fixture-Echo"] = tostring(k)
  })
end
local threads = {}
function setup (thread) table.insert(threads, thread) end
function init (args) bad = 0; ok = 0; first = nil end
function request ()
  i = i % n + 1
  return requests[i]
end
function response (status, headers, body)
  local echo = body:match('"echo":"(%d+)"')
  if status == 200 and echo ~= nil and body:find('"user":"user' .. echo .. '"', 1, true) then ok = ok + 1 else
    bad = bad + 1
    if first == nil then first = status .. " " .. body:sub(1, 200) end
  end
end
function done (summary, latency, requests)
  local good, wrong = 0, 0
  for _, th in ipairs(threads) do good = good + th:get("ok"); wrong = wrong + th:get("bad") end
  io.write(string.format("VUSERS ok=%d bad=%d\\n", good, wrong))
  for _, th in ipairs(threads) do
    local f = th:get("first")
    if f ~= nil then io.write("FIRST BAD: " .. f .. "\\n") end
  end
end
`)
  })
  t.teardown(async () => {
    await proxy?.stop()
    await tomcat?.stop()
    if (proxy !== undefined) cleanup(proxy.dataDir)
    cleanup(dir)
  })

  const wrk = async (): Promise<{ ok: number, bad: number, out: string }> => {
    const r = await run('wrk', ['-t2', '-c10', '-d3s', '-s', luaPath, `http://127.0.0.1:${proxy.port}`], { timeoutMs: 60_000 })
    const out = r.stdout.toString('utf8')
    const m = /VUSERS ok=(\d+) bad=(\d+)/.exec(out)
    return { ok: Number(m?.[1] ?? -1), bad: Number(m?.[2] ?? -1), out: out + r.stderr }
  }
  const metrics = async (): Promise<Metric> => parseMetrics((await adminGet(proxy, '/_session/metrics')).body)
  const me = async (n: number): Promise<{ user?: string, session?: string }> => {
    const r = await curl(['-x', `http://vu-${n}@127.0.0.1:${proxy.port}`, `${tomcat.appUrl}/api/me`])
    try { return JSON.parse(r.stdout) } catch { return {} }
  }
  const sessions = new Map<number, string | undefined>()

  t.test('wrk runs 50 virtual users: each logged in once, as its own Tomcat user', async (t) => {
    const r = await wrk()
    t.equal(r.bad, 0, `every response was its own user's (${r.out.slice(0, 600)})`)
    t.ok(r.ok >= N, `wrk sent ${r.ok} requests, at least one per user`)
    t.comment(`first run: ${r.ok} requests, all answered by the right user`)
    for (const n of vus) {
      const who = await me(n)
      sessions.set(n, who.session)
      if (who.user !== userOf(n)) t.fail(`vu-${n} is logged in as ${String(who.user)}, expected ${userOf(n)}`)
    }
    t.equal(new Set(sessions.values()).size, N, 'one server session per user')
    const m = await metrics()
    t.same(vus.filter((n) => m.logins.get(`vu-${n}`) !== 1), [], 'exactly one login per user')
    t.same(vus.filter((n) => (m.relogins.get(`vu-${n}`) ?? 0) !== 0), [], 'and no re-login yet')
  })

  t.test('after the server ends every session: exactly one re-login per user', async (t) => {
    const killed = await curl([`${tomcat.appUrl}/public/invalidate-all`])
    t.equal(killed.stdout, `invalidated ${N}`, 'the server ended all 50 sessions')
    const r = await wrk()
    t.equal(r.bad, 0, `every response was its own user's (${r.out.slice(0, 600)})`)
    t.comment(`second run: ${r.ok} requests, all answered by the right user`)
    for (const n of vus) {
      const who = await me(n)
      if (who.user !== userOf(n)) t.fail(`vu-${n} is logged in as ${String(who.user)}, expected ${userOf(n)}`)
      if (who.session === sessions.get(n)) t.fail(`vu-${n} kept its dead session`)
    }
    const m = await metrics()
    t.same(vus.filter((n) => m.logins.get(`vu-${n}`) !== 2), [], 'two logins per user in all')
    t.same(vus.filter((n) => m.relogins.get(`vu-${n}`) !== 1), [], 'exactly one re-login per user')
  })

  t.test('a profile that matches but has no row gets a 502 naming the profile and the file', async (t) => {
    const r = await curl(['-i', '-x', `http://vu-51@127.0.0.1:${proxy.port}`, `${tomcat.appUrl}/api/me`])
    t.equal(r.status, 502)
    t.match(r.stdout, /x-session-proxy-error: SP_CREDENTIALS_MISSING/i)
    t.match(r.stdout, /profile "vu-51" has no row in the credentials file/)
    t.ok(r.stdout.includes(csvPath), 'names the file')
  })

  t.test('no password from the file reaches the log', async (t) => {
    const leaked = vus.map(passwordOf).filter((pw) => proxy.output.some((line) => line.includes(pw)))
    t.same(leaked, [])
  })
}
