// Starts the upstream every subject talks to: nginx when installed (the
// config is upstream/nginx.conf), else upstream/node-upstream.mjs.
import fs from 'node:fs'
import path from 'node:path'
import { describeChild, makeTempDir, startChild } from './children.mjs'
import { log } from './log.mjs'
import { COOKIES_PER_BIG_PROFILE, COOKIES_PER_PROFILE, ROOT, UPSTREAM_KIND } from './settings.mjs'
import { freePort, httpGet, waitUntil, which } from './util.mjs'

const here = path.join(ROOT, 'bench', 'upstream')

function seedLines (n) {
  return Array.from({ length: n }, (_, i) => `      add_header Set-Cookie "s${i}=$request_id; Path=/; Max-Age=86400";`).join('\n')
}

export async function startUpstream () {
  if (UPSTREAM_KIND && UPSTREAM_KIND !== 'nginx' && UPSTREAM_KIND !== 'node') throw new Error(`BENCH_UPSTREAM must be nginx or node, got ${UPSTREAM_KIND}`)
  const nginxBin = which('nginx')
  const useNginx = UPSTREAM_KIND === 'nginx' || (UPSTREAM_KIND === '' && nginxBin)
  if (UPSTREAM_KIND === 'nginx' && !nginxBin) throw new Error('BENCH_UPSTREAM=nginx but nginx is not installed')
  const dir = makeTempDir('upstream')
  const port = await freePort()
  let rec
  if (useNginx) {
    const conf = path.join(dir, 'nginx.conf')
    const text = fs.readFileSync(path.join(here, 'nginx.conf'), 'utf8')
      .replaceAll('@DIR@', dir).replaceAll('@PORT@', String(port))
      .replace('@SEED@', seedLines(COOKIES_PER_PROFILE)).replace('@SEED_SMALL@', seedLines(COOKIES_PER_BIG_PROFILE))
    fs.writeFileSync(conf, text)
    rec = startChild('nginx', nginxBin, ['-p', `${dir}/`, '-e', path.join(dir, 'error.log'), '-c', conf])
  } else {
    log('nginx not installed: using the Node upstream (child process)')
    rec = startChild('node-upstream', process.execPath, [path.join(here, 'node-upstream.mjs'), String(port), String(COOKIES_PER_PROFILE), String(COOKIES_PER_BIG_PROFILE)])
  }
  try {
    await waitUntil(async () => (await httpGet({ port, upPort: port, urlPath: '/', timeoutMs: 1000 })).status === 200, {
      timeoutMs: 15000,
      what: `upstream ${rec.name} did not answer on 127.0.0.1:${port}`,
      abortIf: () => (rec.exited ? 'it exited' : null)
    })
  } catch (e) {
    let errLog = ''
    try { errLog = fs.readFileSync(path.join(dir, 'error.log'), 'utf8').slice(-2000) } catch {}
    throw new Error(`${e.message}\n  ${describeChild(rec)}${errLog ? `\n  error.log:\n${errLog}` : ''}`)
  }
  log(`upstream: ${rec.name} on 127.0.0.1:${port}`)
  return { kind: useNginx ? 'nginx' : 'node', port, rec, bin: useNginx ? nginxBin : process.execPath }
}
