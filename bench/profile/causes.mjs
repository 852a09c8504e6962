// Time per request by cause in a .cpuprofile: the inclusive time of the
// functions on the proxying path (kernel write time counted apart).
// Usage: node bench/profile/causes.mjs FILE.cpuprofile REQUESTS
import fs from 'node:fs'
const [file, reqs] = process.argv.slice(2)
const p = JSON.parse(fs.readFileSync(file))
const byId = new Map(p.nodes.map(n => [n.id, n]))
const selfT = new Map()
for (let i = 0; i < p.samples.length; i++) selfT.set(p.samples[i], (selfT.get(p.samples[i]) ?? 0) + (p.timeDeltas[i] ?? 0))
const key = (n) => { const cf = n.callFrame; return `${cf.functionName || '(anon)'}@${cf.url.replace(/^.*node_modules\//, '').replace(/^file:\/\/.*\/dist\//, '').replace(/^node:/, '')}` }
const SEL = [
  [/^\(anon\)@.*bare-proxy.mjs/, 'bare request handler (incl.)'],
  [/^onHeaders@.*bare-proxy/, 'bare onHeaders (incl.)'],
  [/^dispatch@undici\/lib\/dispatcher\/dispatcher-base/, 'undici Agent.dispatch (incl.)'],
  [/^onComplete@.*bare-proxy/, 'bare onComplete (incl.)'],
  [/^parserOnIncoming@_http_server/, 'node parserOnIncoming (incl., whole request side)'],
  [/^onStreamRead@stream_base_commons/, 'onStreamRead (incl., all socket reads)'],
  [/^forwardRequest@proxy\/forward/, 'forwardRequest (incl.)'],
  [/^scanRequestHeaders@/, '  scanRequestHeaders'],
  [/^buildRequestHeaders@/, '  buildRequestHeaders'],
  [/^cookieHeader@/, '  jar.cookieHeader'],
  [/^resolveRequestProfile@/, '  resolveRequestProfile'],
  [/^dispatch@proxy\/upstream/, '  pool.dispatch (incl. undici dispatch)'],
  [/^Request@undici\/lib\/core\/request/, '    undici Request constructor'],
  [/^retryable@/, '    retryable'],
  [/^onHeaders@proxy\/upstream/, 'retry wrapper onHeaders (incl.)'],
  [/^onHeaders@proxy\/forward/, 'ForwardHandler.onHeaders (incl.)'],
  [/^buildResponseHeaders@/, '  buildResponseHeaders'],
  [/^writeHead@_http_server/, '  res.writeHead'],
  [/^onResponseHead@observe\/metrics/, '  metrics.onResponseHead'],
  [/^onDone@observe\/metrics/, 'metrics.onDone'],
  [/^logDone@/, 'logDone (incl.)'],
  [/^onComplete@proxy\/forward/, 'ForwardHandler.onComplete (incl.)'],
  [/^onData@proxy\/forward/, 'ForwardHandler.onData (incl.)'],
  [/^onConnect@proxy\/forward/, 'ForwardHandler.onConnect'],
  [/@proxy\/upstream.*|^\(anon\)@proxy\/upstream/, ''],
  [/^begin@net\/connections/, 'connections.begin'],
  [/^capture@session/, '  profile.capture (Set-Cookie, unchanged)'],
  [/^StaleConnectionRetry@/, '    new StaleConnectionRetry'],
  [/^\(anon\)@proxy\/upstream/, 'diagnostics sendHeaders listener'],
  [/^publish@diagnostics_channel/, 'diagnostics_channel publish (incl.)'],
  [/^onConnect@proxy\/upstream/, 'retry wrapper onConnect (incl.)'],
  [/^onProxyRequest@server/, 'server onProxyRequest (incl.)'],
  [/^parseTarget@/, '  parseTarget'],
  [/^\(garbage collector\)/, 'GC'],
  [/^writev@$/, 'writev (kernel)'],
  [/^writeLatin1String@$/, 'writeLatin1String (kernel)'],
]
const incl = new Map()
function walk (n, active) {
  const k = key(n)
  let label = null
  for (const [re, l] of SEL) if (l && re.test(k)) { label = l; break }
  const add = label !== null && !active.has(label)
  if (add) active.add(label)
  const s = selfT.get(n.id) ?? 0
  const kernel = /^(writev|writeLatin1String|writeUtf8String|writeBuffer|read|close)@$/.test(k)
  for (const l of active) if (!kernel || l.includes('kernel')) incl.set(l, (incl.get(l) ?? 0) + s)
  for (const c of n.children ?? []) walk(byId.get(c), active)
  if (add) active.delete(label)
}
walk(p.nodes[0], new Set())
let total = 0; for (const [id, s] of selfT) if (byId.get(id).callFrame.functionName !== '(idle)') total += s
console.log(`non-idle total ${(total / reqs).toFixed(2)} us/req`)
for (const [, l] of SEL) if (l && incl.has(l)) console.log(`${(incl.get(l) / reqs).toFixed(2).padStart(7)}  ${l}`)
