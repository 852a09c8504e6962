#!/usr/bin/env node
// session-proxy benchmark harness.
//
//   npm run bench                      # build, then a full run (~4 min with defaults)
//   BENCH_SMOKE=1 node bench/run.mjs   # quick CI smoke run (~20 s)
//
// Plain Node ESM, no dependencies. Needs wrk (/usr/bin/wrk); uses nginx as the
// upstream when installed (else a Node upstream in a child process); runs
// squid, tinyproxy and mitmdump as peers when installed. Loopback only; every
// child is started in its own process group and killed on exit, error, SIGINT
// or SIGTERM; temp dirs are removed. See bench/README.md.
//
// Environment:
//   BENCH_DURATION      measured duration of each wrk run (default 10s; "5", "5s", "1m")
//   BENCH_WARMUP        unrecorded warm-up before each wrk run (default 2s; 0 = none)
//   BENCH_PROFILES      profiles seeded for the many-profiles scenario (default 10000)
//   BENCH_SMOKE=1       quick mode: 1s runs, no warm-up, 200 profiles, no peers, 1 start-up sample
//   BENCH_OUT           JSON output path (default bench/results/latest.json + timestamped copy;
//                       smoke default bench/results/smoke-latest.json)
//   BENCH_PEERS         comma list of peers to try: squid,tinyproxy,mitmproxy (default all; "none")
//   BENCH_UPSTREAM      nginx | node (default: nginx when installed, else node)
//   BENCH_PROXY_BIN     JS entry of the proxy CLI (default dist/cli.js)
//   BENCH_PROXY_CONFIG  passed to the proxy as --config FILE
//   BENCH_STARTUP_RUNS  start-up samples (default 5; smoke 1)
//   BENCH_REPEAT        measured wrk runs per scenario and connection count; the median (by req/s) is
//                       reported (default 1)
//   BENCH_STRICT=1      exit 2 when a measured target is missed

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

// ---------------------------------------------------------------- config

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const ENV = process.env;

function parseDuration(raw, name) {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m)?\s*$/.exec(String(raw));
  if (!m) throw new Error(`${name}: cannot parse duration ${JSON.stringify(raw)} (use e.g. 10s, 5, 1m)`);
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  return unit === 'ms' ? n / 1000 : unit === 'm' ? n * 60 : n;
}

function parseIntEnv(raw, name, dflt) {
  if (raw === undefined || raw === '') return dflt;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name}: expected a non-negative integer, got ${JSON.stringify(raw)}`);
  return n;
}

const SMOKE = /^(1|true|yes)$/i.test(ENV.BENCH_SMOKE ?? '');
// wrk takes whole seconds
const DURATION_S = SMOKE ? 1 : Math.max(1, Math.round(parseDuration(ENV.BENCH_DURATION ?? '10s', 'BENCH_DURATION')));
const WARMUP_S = SMOKE ? 0 : Math.round(parseDuration(ENV.BENCH_WARMUP ?? '2s', 'BENCH_WARMUP'));
const PROFILES = SMOKE ? 200 : parseIntEnv(ENV.BENCH_PROFILES, 'BENCH_PROFILES', 10_000);
const COOKIES_PER_PROFILE = 20; // number of Set-Cookie lines on /seed
const STARTUP_RUNS = SMOKE ? 1 : Math.max(1, parseIntEnv(ENV.BENCH_STARTUP_RUNS, 'BENCH_STARTUP_RUNS', 5));
const REPEAT = SMOKE ? 1 : Math.max(1, parseIntEnv(ENV.BENCH_REPEAT, 'BENCH_REPEAT', 1));
const STRICT = /^(1|true|yes)$/i.test(ENV.BENCH_STRICT ?? '');
const PROXY_BIN = path.resolve(ROOT, ENV.BENCH_PROXY_BIN || 'dist/cli.js');
const PROXY_CONFIG = ENV.BENCH_PROXY_CONFIG ? path.resolve(ENV.BENCH_PROXY_CONFIG) : undefined;
const ALL_PEERS = ['squid', 'tinyproxy', 'mitmproxy'];
const PEERS = (() => {
  if (SMOKE) return [];
  const raw = (ENV.BENCH_PEERS ?? 'all').trim().toLowerCase();
  if (raw === 'all' || raw === '') return ALL_PEERS;
  if (raw === 'none') return [];
  const list = raw.split(',').map((s) => s.trim()).filter(Boolean);
  for (const p of list) if (!ALL_PEERS.includes(p)) throw new Error(`BENCH_PEERS: unknown peer ${p} (known: ${ALL_PEERS.join(', ')})`);
  return list;
})();
const CONNS = [
  { key: 'c32', threads: 2, connections: 32 },
  { key: 'c1', threads: 1, connections: 1 },
];
const DEFAULT_OUT_DIR = path.join(ROOT, 'bench', 'results');
const OUT = ENV.BENCH_OUT
  ? path.resolve(ENV.BENCH_OUT)
  : path.join(DEFAULT_OUT_DIR, SMOKE ? 'smoke-latest.json' : 'latest.json');
const TARGETS = {
  vsSquid: 1.5,
  vsTinyproxy: 2,
  vsMitmproxy: 20,
  rotateOverFixed: 0.8,
  profilesOverSingle: 0.9,
  profilesRssMb: 300,
  startupMs: 500,
};

const T0 = performance.now();
/** A timeout for Promise.race that does not keep the process alive on its own. */
const raceTimeout = (ms, value) => sleep(ms, value, { ref: false });
const log = (...a) => console.error(`[bench +${((performance.now() - T0) / 1000).toFixed(1)}s]`, ...a);

// ---------------------------------------------------------------- children & cleanup

/** @type {Set<any>} */
const children = new Set();
/** @type {Set<string>} */
const tempDirs = new Set();
/** set once cleanup begins: no new children or temp dirs after that */
let cleanedUp = false;

function pushTail(arr, line, max = 60) {
  arr.push(line.length > 2000 ? line.slice(0, 2000) + '…' : line);
  if (arr.length > max) arr.shift();
}

/**
 * Spawn a child in its own process group (so the whole tree can be killed),
 * draining stdout/stderr line by line (keeping a tail for diagnostics).
 */
function startChild(name, cmd, args, { env = process.env, cwd = ROOT, onLine } = {}) {
  if (cleanedUp) throw new Error(`not starting ${name}: the run is being stopped`);
  const proc = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const rec = {
    name,
    proc,
    pid: proc.pid,
    exited: false,
    code: null,
    signal: null,
    spawnError: null,
    stdout: [],
    stderr: [],
    stdoutAll: '',
    keepStdout: false,
    exitPromise: null,
  };
  rec.exitPromise = new Promise((resolve) => {
    const done = () => {
      if (rec.exited) return;
      rec.exited = true;
      children.delete(rec);
      // kill leftovers of the group (e.g. nginx workers if the master died)
      killGroup(rec, 'SIGKILL');
      resolve(rec);
    };
    proc.on('error', (err) => {
      rec.spawnError = err;
      done();
    });
    proc.on('exit', (code, signal) => {
      rec.code = code;
      rec.signal = signal;
      // wait for stdout/stderr to be fully read ('close'), but not forever: a
      // surviving grandchild could hold the pipes open
      setTimeout(done, 1000).unref();
    });
    proc.on('close', () => setImmediate(done));
  });
  for (const [stream, tail] of [[proc.stdout, rec.stdout], [proc.stderr, rec.stderr]]) {
    stream.setEncoding('utf8');
    let buf = '';
    stream.on('data', (chunk) => {
      if (stream === proc.stdout && rec.keepStdout) rec.stdoutAll += chunk;
      buf += chunk;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        pushTail(tail, line);
        if (onLine) onLine(line, stream === proc.stdout ? 'stdout' : 'stderr');
      }
      if (buf.length > 1_000_000) buf = buf.slice(-10_000);
    });
    stream.on('error', () => {});
  }
  if (proc.pid !== undefined) children.add(rec);
  return rec;
}

function killGroup(rec, signal) {
  if (rec.pid === undefined) return;
  try {
    process.kill(-rec.pid, signal);
  } catch {
    /* already gone */
  }
}

/** Send `signal` (to the process only, or to its group), wait, then SIGKILL the group. */
async function stopChild(rec, { signal = 'SIGTERM', group = true, timeoutMs = 5000 } = {}) {
  if (!rec || rec.exited) return rec;
  const t0 = performance.now();
  try {
    if (group) process.kill(-rec.pid, signal);
    else process.kill(rec.pid, signal);
  } catch {
    /* gone */
  }
  const timer = raceTimeout(timeoutMs, 'timeout');
  const r = await Promise.race([rec.exitPromise, timer]);
  rec.stopMs = performance.now() - t0;
  if (r === 'timeout') {
    rec.killedHard = true;
    killGroup(rec, 'SIGKILL');
    await Promise.race([rec.exitPromise, raceTimeout(3000)]);
  }
  return rec;
}

function describeChild(rec) {
  const parts = [`${rec.name} (pid ${rec.pid})`];
  if (rec.spawnError) parts.push(`spawn error: ${rec.spawnError.message}`);
  if (rec.exited) parts.push(`exited code=${rec.code} signal=${rec.signal}`);
  if (rec.stderr.length) parts.push('stderr tail:\n    ' + rec.stderr.slice(-15).join('\n    '));
  if (rec.stdout.length) parts.push('stdout tail:\n    ' + rec.stdout.slice(-10).join('\n    '));
  return parts.join('; ');
}

async function cleanup() {
  if (cleanedUp) return;
  cleanedUp = true;
  await Promise.all([...children].map((rec) => stopChild(rec, { timeoutMs: 3000 })));
  for (const d of tempDirs) {
    try {
      fs.rmSync(d, { recursive: true, force: true });
    } catch {
      /* ignore */
    }
  }
}

// Last resort (also runs after process.exit()): synchronous kill + rm.
process.on('exit', () => {
  for (const rec of children) killGroup(rec, 'SIGKILL');
  for (const d of tempDirs) {
    try {
      fs.rmSync(d, { recursive: true, force: true });
    } catch {
      /* ignore */
    }
  }
});

let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    if (interrupted) {
      process.exit(130);
    }
    interrupted = true;
    log(`${sig} received: stopping children and cleaning up`);
    cleanup().finally(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  });
}

function makeTempDir(prefix) {
  if (cleanedUp) throw new Error('not creating a temp dir: the run is being stopped');
  const d = fs.mkdtempSync(path.join(os.tmpdir(), `session-proxy-bench-${prefix}-`));
  tempDirs.add(d);
  return d;
}

// ---------------------------------------------------------------- small utilities

function which(cmd) {
  const dirs = [...(ENV.PATH ?? '').split(':'), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  for (const d of dirs) {
    if (!d) continue;
    const p = path.join(d, cmd);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      if (fs.statSync(p).isFile()) return p;
    } catch {
      /* next */
    }
  }
  return null;
}

function versionOf(bin, args) {
  if (!bin) return null;
  const r = spawnSync(bin, args, { encoding: 'utf8', timeout: 15000 });
  const out = `${r.stdout ?? ''}\n${r.stderr ?? ''}`.split('\n').map((s) => s.trim()).filter(Boolean);
  return out[0] ?? null;
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {net.AddressInfo} */ (s.address());
      s.close(() => resolve(port));
    });
  });
}

/**
 * One HTTP GET. With `proxyPort`, the request goes to the proxy in absolute
 * form (GET http://127.0.0.1:UP/path HTTP/1.1), like curl -x does.
 */
function httpGet({ port, upPort, urlPath, proxyPort, headers = {}, agent = false, timeoutMs = 5000 }) {
  return new Promise((resolve, reject) => {
    const viaProxy = proxyPort !== undefined;
    const req = http.request(
      {
        host: '127.0.0.1',
        port: viaProxy ? proxyPort : port ?? upPort,
        path: viaProxy ? `http://127.0.0.1:${upPort}${urlPath}` : urlPath,
        method: 'GET',
        headers: { host: `127.0.0.1:${upPort ?? port}`, ...headers },
        agent,
      },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

async function waitUntil(fn, { timeoutMs, intervalMs = 20, what, abortIf }) {
  const deadline = performance.now() + timeoutMs;
  let lastErr;
  while (performance.now() < deadline) {
    const reason = abortIf?.();
    if (reason) throw new Error(`${what}: ${reason}`);
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      lastErr = e;
    }
    await sleep(intervalMs);
  }
  throw new Error(`${what}: timed out after ${timeoutMs} ms${lastErr ? ` (last error: ${lastErr.message})` : ''}`);
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  if (!s.length) return null;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const round = (x, d = 2) => (x === null || x === undefined || !Number.isFinite(x) ? null : Number(x.toFixed(d)));

// ---------------------------------------------------------------- /proc memory

function procStatus(pid) {
  try {
    const txt = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k) => {
      const m = new RegExp(`^${k}:\\s+(\\d+)\\s*kB`, 'm').exec(txt);
      return m ? Number(m[1]) : null;
    };
    return { hwmKb: kb('VmHWM'), rssKb: kb('VmRSS') };
  } catch {
    return null;
  }
}

/** pid plus all its descendants (scan of /proc/<pid>/stat). */
function processTree(rootPid) {
  const kids = new Map();
  for (const ent of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(ent)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${ent}/stat`, 'utf8');
      const after = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ppid = Number(after[1]);
      if (!kids.has(ppid)) kids.set(ppid, []);
      kids.get(ppid).push(Number(ent));
    } catch {
      /* raced with exit */
    }
  }
  const out = [rootPid];
  for (let i = 0; i < out.length; i++) for (const k of kids.get(out[i]) ?? []) out.push(k);
  return out;
}

/** Reset VmHWM (peak RSS) of the tree: `echo 5 > /proc/PID/clear_refs` (Linux >= 4.0). */
function resetPeakRss(rootPid) {
  let ok = true;
  for (const pid of processTree(rootPid)) {
    try {
      fs.writeFileSync(`/proc/${pid}/clear_refs`, '5');
    } catch {
      ok = false;
    }
  }
  return ok;
}

/** Sum of VmHWM / VmRSS over the process tree, in MB. */
function treeMemory(rootPid) {
  const pids = processTree(rootPid);
  let hwm = 0;
  let rss = 0;
  let seen = 0;
  for (const pid of pids) {
    const s = procStatus(pid);
    if (!s) continue;
    seen++;
    hwm += s.hwmKb ?? 0;
    rss += s.rssKb ?? 0;
  }
  if (!seen) return null;
  return { peak_mb: round(hwm / 1024, 1), rss_mb: round(rss / 1024, 1), processes: seen };
}

function dirBytes(dir) {
  let total = 0;
  let files = 0;
  const walk = (d) => {
    let ents;
    try {
      ents = fs.readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of ents) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else {
        try {
          total += fs.statSync(p).size;
          files++;
        } catch {
          /* ignore */
        }
      }
    }
  };
  walk(dir);
  return { bytes: total, files };
}

// ---------------------------------------------------------------- upstream

function nginxConf(dir, port) {
  const seed = Array.from(
    { length: COOKIES_PER_PROFILE },
    (_, i) => `      add_header Set-Cookie "s${i}=$request_id; Path=/; Max-Age=86400";`,
  ).join('\n');
  return `# generated by bench/run.mjs
daemon off;
master_process on;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
worker_rlimit_nofile 8192;
events {
  worker_connections 4096;
}
http {
  access_log off;
  server_tokens off;
  default_type text/plain;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy_temp;
  fastcgi_temp_path ${dir}/fastcgi_temp;
  uwsgi_temp_path ${dir}/uwsgi_temp;
  scgi_temp_path ${dir}/scgi_temp;
  keepalive_timeout 75s;
  keepalive_requests 10000000;
  server {
    listen 127.0.0.1:${port} backlog=4096;
    # fixed cookie: the jar captures it once, then injects it on every request
    location = / {
      add_header Set-Cookie "sid=abc; Path=/";
      return 200 "ok\\n";
    }
    # a cookie that changes on every response: the jar is updated (and persisted) on the hot path
    location = /rotate {
      add_header Set-Cookie "rot=$request_id; Path=/";
      return 200 "ok\\n";
    }
    # ${COOKIES_PER_PROFILE} cookies at once, used to seed many profiles
    location = /seed {
${seed}
      return 200 "seeded\\n";
    }
    # echoes the Cookie header the proxy injected (sanity checks only)
    location = /echo {
      return 200 "$http_cookie\\n";
    }
    location / {
      return 404 "not found\\n";
    }
  }
}
`;
}

const NODE_UPSTREAM = `// generated by bench/run.mjs: fallback upstream when nginx is absent
import http from 'node:http';
import crypto from 'node:crypto';
const port = Number(process.argv[2]);
const N = ${COOKIES_PER_PROFILE};
const server = http.createServer((req, res) => {
  req.resume();
  const p = req.url.split('?')[0];
  const h = { 'content-type': 'text/plain' };
  if (p === '/') { h['set-cookie'] = 'sid=abc; Path=/'; res.writeHead(200, h); res.end('ok\\n'); return; }
  if (p === '/rotate') { h['set-cookie'] = 'rot=' + crypto.randomUUID().replaceAll('-', '') + '; Path=/'; res.writeHead(200, h); res.end('ok\\n'); return; }
  if (p === '/seed') {
    const v = crypto.randomUUID().replaceAll('-', '');
    h['set-cookie'] = Array.from({ length: N }, (_, i) => 's' + i + '=' + v + '; Path=/; Max-Age=86400');
    res.writeHead(200, h); res.end('seeded\\n'); return;
  }
  if (p === '/echo') { res.writeHead(200, h); res.end((req.headers.cookie ?? '') + '\\n'); return; }
  res.writeHead(404, h); res.end('not found\\n');
});
server.keepAliveTimeout = 75000;
server.headersTimeout = 80000;
server.maxRequestsPerSocket = 0;
server.listen(port, '127.0.0.1', () => console.log('listening ' + port));
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
`;

async function startUpstream() {
  const kind = (ENV.BENCH_UPSTREAM ?? '').toLowerCase();
  if (kind && kind !== 'nginx' && kind !== 'node') throw new Error(`BENCH_UPSTREAM must be nginx or node, got ${kind}`);
  const nginxBin = which('nginx');
  const useNginx = kind === 'nginx' || (kind === '' && nginxBin);
  if (kind === 'nginx' && !nginxBin) throw new Error('BENCH_UPSTREAM=nginx but nginx is not installed');
  const dir = makeTempDir('upstream');
  const port = await freePort();
  let rec;
  if (useNginx) {
    const conf = path.join(dir, 'nginx.conf');
    fs.writeFileSync(conf, nginxConf(dir, port));
    rec = startChild('nginx', nginxBin, ['-p', `${dir}/`, '-e', path.join(dir, 'error.log'), '-c', conf]);
  } else {
    log('nginx not installed: using the Node upstream (child process)');
    const script = path.join(dir, 'upstream.mjs');
    fs.writeFileSync(script, NODE_UPSTREAM);
    rec = startChild('node-upstream', process.execPath, [script, String(port)]);
  }
  try {
    await waitUntil(async () => (await httpGet({ port, upPort: port, urlPath: '/', timeoutMs: 1000 })).status === 200, {
      timeoutMs: 15000,
      what: `upstream ${rec.name} did not answer on 127.0.0.1:${port}`,
      abortIf: () => (rec.exited ? 'it exited' : null),
    });
  } catch (e) {
    let errLog = '';
    try {
      errLog = fs.readFileSync(path.join(dir, 'error.log'), 'utf8').slice(-2000);
    } catch {
      /* none */
    }
    throw new Error(`${e.message}\n  ${describeChild(rec)}${errLog ? `\n  error.log:\n${errLog}` : ''}`);
  }
  log(`upstream: ${rec.name} on 127.0.0.1:${port}`);
  return { kind: useNginx ? 'nginx' : 'node', port, rec, bin: useNginx ? nginxBin : process.execPath };
}

// ---------------------------------------------------------------- session-proxy

let spCount = 0;
function spawnSessionProxy({ port = 0, tmpRoot }) {
  if (cleanedUp) throw new Error('not starting session-proxy: the run is being stopped');
  const dataDir = path.join(tmpRoot, `data-${++spCount}`);
  fs.mkdirSync(dataDir, { recursive: true });
  const args = [PROXY_BIN, '--host', '127.0.0.1', '--port', String(port), '--data-dir', dataDir, '--log-level', 'warn'];
  if (PROXY_CONFIG) args.push('--config', PROXY_CONFIG);
  let resolveListening;
  const listening = new Promise((r) => (resolveListening = r));
  const t0 = performance.now();
  const rec = startChild('session-proxy', process.execPath, args, {
    onLine: (line, stream) => {
      if (stream !== 'stdout' || !line.includes('listening')) return;
      let url;
      try {
        const obj = JSON.parse(line);
        if (obj.msg === 'listening' && typeof obj.url === 'string') url = obj.url;
      } catch {
        const m = /"msg"\s*:\s*"listening"/.test(line) && /"url"\s*:\s*"(http:\/\/[^"]+)"/.exec(line);
        if (m) url = m[1];
      }
      if (!url) return;
      const p = Number(new URL(url).port);
      if (p > 0) resolveListening({ port: p, ms: performance.now() - t0 });
    },
  });
  return { rec, dataDir, listening, t0 };
}

async function startSessionProxy(tmpRoot) {
  const sp = spawnSessionProxy({ tmpRoot });
  const r = await Promise.race([
    sp.listening,
    sp.rec.exitPromise.then(() => 'exited'),
    raceTimeout(20000, 'timeout'),
  ]);
  if (r === 'exited' || r === 'timeout') {
    const why = r === 'exited' ? 'exited before printing the listening line' : 'no "listening" line on stdout within 20 s';
    await stopChild(sp.rec);
    throw new Error(`session-proxy ${why}\n  cmd: node ${PROXY_BIN} ...\n  ${describeChild(sp.rec)}`);
  }
  return { ...sp, port: r.port, listenMs: r.ms };
}

/** SIGTERM to the proxy process itself; reports whether it stopped cleanly. */
async function stopSessionProxy(sp) {
  await stopChild(sp.rec, { signal: 'SIGTERM', group: false, timeoutMs: 5000 });
  killGroup(sp.rec, 'SIGKILL');
  return {
    clean: !sp.rec.killedHard && (sp.rec.code === 0 || sp.rec.signal === 'SIGTERM'),
    code: sp.rec.code,
    signal: sp.rec.signal,
    stop_ms: round(sp.rec.stopMs, 1),
  };
}

/** Spawn → first successful proxied response, polling in a tight loop. */
async function measureStartup(up, tmpRoot) {
  const port = await freePort(); // a fixed port, so polling can begin at spawn time
  const sp = spawnSessionProxy({ port, tmpRoot });
  let attempts = 0;
  let firstOkMs = null;
  let lastErr = '';
  try {
    const deadline = sp.t0 + 20000;
    while (performance.now() < deadline) {
      if (sp.rec.exited) throw new Error(`session-proxy exited during start-up\n  ${describeChild(sp.rec)}`);
      attempts++;
      try {
        const r = await httpGet({ proxyPort: port, upPort: up.port, urlPath: '/', timeoutMs: 2000 });
        if (r.status === 200) {
          firstOkMs = performance.now() - sp.t0;
          break;
        }
        lastErr = `HTTP ${r.status}`;
      } catch (e) {
        lastErr = e.code ?? e.message;
      }
      await sleep(1);
    }
    if (firstOkMs === null) throw new Error(`session-proxy start-up: no 200 through the proxy within 20 s (last: ${lastErr})`);
    const l = await Promise.race([sp.listening, raceTimeout(2000, null)]);
    const stop = await stopSessionProxy(sp);
    if (!stop.clean) check('start-up: SIGTERM stops the proxy cleanly', false, JSON.stringify(stop));
    return { first_response_ms: round(firstOkMs, 1), listening_line_ms: l ? round(l.ms, 1) : null, attempts, stop };
  } finally {
    if (!sp.rec.exited) await stopSessionProxy(sp);
  }
}

// ---------------------------------------------------------------- peers

async function startPeer(name, up) {
  const dir = makeTempDir(name);
  const port = await freePort();
  let rec;
  let bin;
  if (name === 'squid') {
    bin = which('squid');
    if (!bin) return { skipped: 'squid not installed (command -v squid failed)' };
    // squid drops privileges to its effective user when started as root: let it write its logs here
    fs.chmodSync(dir, 0o777);
    const conf = path.join(dir, 'squid.conf');
    fs.writeFileSync(
      conf,
      `# generated by bench/run.mjs (loopback only)
http_port 127.0.0.1:${port}
http_access allow all
cache deny all
cache_mem 8 MB
pid_filename ${dir}/squid.pid
cache_log ${dir}/cache.log
access_log none
cache_store_log none
logfile_rotate 0
coredump_dir ${dir}
pinger_enable off
shutdown_lifetime 1 seconds
max_filedescriptors 4096
visible_hostname session-proxy-bench
`,
    );
    rec = startChild('squid', bin, ['-N', '-f', conf]);
  } else if (name === 'tinyproxy') {
    bin = which('tinyproxy');
    if (!bin) return { skipped: 'tinyproxy not installed (command -v tinyproxy failed)' };
    fs.chmodSync(dir, 0o777);
    const conf = path.join(dir, 'tinyproxy.conf');
    fs.writeFileSync(
      conf,
      `# generated by bench/run.mjs (loopback only)
Port ${port}
Listen 127.0.0.1
Timeout 60
MaxClients 256
Allow 127.0.0.1
LogLevel Error
LogFile "${dir}/tinyproxy.log"
PidFile "${dir}/tinyproxy.pid"
`,
    );
    rec = startChild('tinyproxy', bin, ['-d', '-c', conf]);
  } else if (name === 'mitmproxy') {
    bin = which('mitmdump');
    if (!bin) return { skipped: 'mitmproxy not installed (command -v mitmdump failed)' };
    rec = startChild(
      'mitmdump',
      bin,
      [
        '--listen-host', '127.0.0.1',
        '--listen-port', String(port),
        '-q',
        '--set', 'stickycookie=.',
        '--set', `confdir=${path.join(dir, 'conf')}`,
      ],
      { env: { ...process.env, HOME: dir } },
    );
  } else {
    throw new Error(`unknown peer ${name}`);
  }
  try {
    // the "single curl through the proxy" check: must return 200
    await waitUntil(
      async () => {
        const r = await httpGet({ proxyPort: port, upPort: up.port, urlPath: '/', timeoutMs: 2000 });
        if (r.status !== 200) throw new Error(`HTTP ${r.status}`);
        return true;
      },
      { timeoutMs: 30000, intervalMs: 100, what: `${name} did not return 200 through 127.0.0.1:${port}`, abortIf: () => (rec.exited ? 'it exited' : null) },
    );
  } catch (e) {
    let extra = '';
    for (const f of ['cache.log', 'tinyproxy.log']) {
      try {
        extra += `\n  ${f}: ${fs.readFileSync(path.join(dir, f), 'utf8').slice(-1500)}`;
      } catch {
        /* none */
      }
    }
    await stopChild(rec);
    return { skipped: `${e.message}\n  ${describeChild(rec)}${extra}` };
  }
  return { port, rec, bin };
}

// ---------------------------------------------------------------- wrk

function wrkScript({ upPort, urlPath, viaProxy, profiles }) {
  const reqPath = viaProxy ? `http://127.0.0.1:${upPort}${urlPath}` : urlPath;
  return `-- generated by bench/run.mjs
local up_host = "127.0.0.1:${upPort}"
wrk.method = "GET"
-- absolute-form request line when talking to a proxy: GET http://host:port/path HTTP/1.1
wrk.path = "${reqPath}"
wrk.headers["Host"] = up_host
local nprof = ${profiles}

local thread_count = 0
function setup(thread)
  thread:set("tid", thread_count)
  thread_count = thread_count + 1
end

local reqs = nil
local idx = 0
function init(args)
  if nprof > 0 then
    reqs = {}
    for i = 0, nprof - 1 do
      reqs[i + 1] = wrk.format(nil, nil, { ["Host"] = up_host, ["X-Session-Profile"] = "p" .. i })
    end
    -- each thread starts at a different profile and cycles through all of them
    idx = ((tid or 0) * 7919) % nprof
  end
end

if nprof > 0 then
  function request()
    idx = idx + 1
    if idx > nprof then idx = 1 end
    return reqs[idx]
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%.0f,"duration_us":%.0f,"bytes":%.0f,"err_connect":%.0f,"err_read":%.0f,"err_write":%.0f,"err_status":%.0f,"err_timeout":%.0f,"lat_mean_us":%.1f,"lat_max_us":%.0f,"p50_us":%.0f,"p90_us":%.0f,"p99_us":%.0f,"p999_us":%.0f}\\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9)))
end
`;
}

let WRK_BIN = null;

async function execWrk(args, durationS) {
  const rec = startChild('wrk', WRK_BIN, args);
  rec.keepStdout = true;
  const r = await Promise.race([rec.exitPromise, raceTimeout((durationS + 30) * 1000, 'timeout')]);
  if (r === 'timeout') {
    await stopChild(rec, { signal: 'SIGKILL' });
    throw new Error(`wrk did not finish in ${durationS + 30} s`);
  }
  if (rec.spawnError || rec.code !== 0) throw new Error(`wrk failed: ${describeChild(rec)}`);
  return rec.stdoutAll;
}

async function runWrk({ targetPort, script, threads, connections }) {
  const base = ['-t', String(threads), '-c', String(connections), '--timeout', '5s', '-s', script];
  const url = `http://127.0.0.1:${targetPort}/`;
  if (WARMUP_S > 0) await execWrk([...base, '-d', `${WARMUP_S}s`, url], WARMUP_S);
  const out = await execWrk([...base, '-d', `${DURATION_S}s`, url], DURATION_S);
  const line = out.split('\n').find((l) => l.startsWith('BENCH_JSON '));
  if (!line) throw new Error(`wrk output has no BENCH_JSON line:\n${out}`);
  const j = JSON.parse(line.slice('BENCH_JSON '.length));
  const m = /Requests\/sec:\s+([\d.]+)/.exec(out);
  const errors = j.err_connect + j.err_read + j.err_write + j.err_timeout;
  return {
    threads,
    connections,
    duration_s: round(j.duration_us / 1e6, 3),
    requests: j.requests,
    rps: round(j.requests / (j.duration_us / 1e6), 1),
    wrk_rps: m ? Number(m[1]) : null,
    p50_ms: round(j.p50_us / 1000, 3),
    p90_ms: round(j.p90_us / 1000, 3),
    p99_ms: round(j.p99_us / 1000, 3),
    p999_ms: round(j.p999_us / 1000, 3),
    mean_ms: round(j.lat_mean_us / 1000, 3),
    max_ms: round(j.lat_max_us / 1000, 3),
    // wrk counts responses with status >= 400 as "status errors"
    non2xx: j.err_status,
    errors,
    error_detail: { connect: j.err_connect, read: j.err_read, write: j.err_write, timeout: j.err_timeout },
  };
}

/** Run the scenario at every connection count, tracking the peak RSS of `pid`'s tree. */
async function measure(scenario, { targetPort, upPort, urlPath, viaProxy, profiles = 0, pid, tmpRoot }) {
  const script = path.join(tmpRoot, `${scenario.name}.lua`);
  fs.writeFileSync(script, wrkScript({ upPort, urlPath, viaProxy, profiles }));
  const hwmReset = pid ? resetPeakRss(pid) : null;
  scenario.runs = {};
  scenario.loadavg_1m_at_start = round(os.loadavg()[0], 2);
  for (const c of CONNS) {
    const runs = [];
    for (let i = 0; i < REPEAT; i++) {
      log(
        `  ${scenario.name}: wrk -t${c.threads} -c${c.connections} -d${DURATION_S}s${WARMUP_S ? ` (+${WARMUP_S}s warm-up)` : ''}${REPEAT > 1 ? ` [${i + 1}/${REPEAT}]` : ''}`,
      );
      runs.push(await runWrk({ targetPort, script, threads: c.threads, connections: c.connections }));
    }
    // with BENCH_REPEAT > 1, report the run with the median req/s (and keep all rates)
    const sorted = [...runs].sort((x, y) => x.rps - y.rps);
    const chosen = sorted[(sorted.length - 1) >> 1];
    scenario.runs[c.key] = REPEAT > 1 ? { ...chosen, repeats_rps: runs.map((r) => r.rps) } : chosen;
  }
  if (pid) {
    const mem = treeMemory(pid);
    scenario.rss = mem ? { ...mem, peak_reset_before_run: hwmReset } : null;
  }
  scenario.status = 'ok';
}

// ---------------------------------------------------------------- seeding

async function seedProfiles(proxyPort, upPort, n) {
  const concurrency = 32;
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const deadline = performance.now() + 300_000;
  let next = 0;
  let ok = 0;
  let failed = 0;
  let firstError = null;
  const t0 = performance.now();
  const worker = async () => {
    while (next < n && performance.now() < deadline) {
      const i = next++;
      try {
        const r = await httpGet({
          proxyPort,
          upPort,
          urlPath: '/seed',
          headers: { 'x-session-profile': `p${i}` },
          agent,
          timeoutMs: 10000,
        });
        // One request to the measured path too, so every profile also holds
        // its `sid` cookie: the measured window is then the steady state of
        // 10,000 warm profiles, and the cost of each profile's first cookie
        // change (a journal write per profile) shows in the seeding rate.
        const warm = r.status === 200
          ? await httpGet({ proxyPort, upPort, urlPath: '/', headers: { 'x-session-profile': `p${i}` }, agent, timeoutMs: 10000 })
          : r;
        if (r.status === 200 && warm.status === 200) ok++;
        else {
          failed++;
          firstError ??= `HTTP ${r.status}`;
        }
      } catch (e) {
        failed++;
        firstError ??= e.message;
      }
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  agent.destroy();
  return {
    profiles: n,
    cookies_per_profile: COOKIES_PER_PROFILE,
    ok,
    failed,
    not_sent: n - ok - failed,
    first_error: firstError,
    duration_ms: round(performance.now() - t0, 0),
  };
}

// ---------------------------------------------------------------- sanity checks (non-fatal)

const checks = [];
function check(name, ok, detail) {
  checks.push({ name, ok, detail });
  if (!ok) log(`WARNING: check failed: ${name}: ${detail}`);
}

async function echoCookies(proxyPort, upPort, headers = {}) {
  const r = await httpGet({ proxyPort, upPort, urlPath: '/echo', headers });
  return r.body.trim();
}

// ---------------------------------------------------------------- report

function fmt(x, d = 1) {
  return x === null || x === undefined ? '-' : Number(x).toFixed(d);
}

function printTable(scenarios) {
  const rows = [['scenario', 'conns', 'req/s', 'p50 ms', 'p99 ms', 'non2xx', 'errors', 'peak RSS MB']];
  for (const s of scenarios) {
    if (s.status !== 'ok') {
      rows.push([s.name, '-', s.status, '', '', '', '', '']);
      continue;
    }
    for (const c of CONNS) {
      const r = s.runs[c.key];
      rows.push([
        s.name,
        String(c.connections),
        fmt(r.rps, 0),
        fmt(r.p50_ms, 3),
        fmt(r.p99_ms, 3),
        String(r.non2xx),
        String(r.errors),
        s.rss ? fmt(s.rss.peak_mb, 1) : '-',
      ]);
    }
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const line = (r) => r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ');
  console.log(line(rows[0]));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows.slice(1)) console.log(line(r));
}

// ---------------------------------------------------------------- main

async function main() {
  const startedAt = new Date();
  WRK_BIN = which('wrk');
  if (!WRK_BIN) throw new Error('wrk is not installed (apt-get install -y wrk)');
  if (!fs.existsSync(PROXY_BIN)) throw new Error(`${PROXY_BIN} does not exist: run npm run build first (npm run bench does)`);

  const tmpRoot = makeTempDir('run');
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
  const git = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' });
  const gitDirty = spawnSync('git', ['status', '--porcelain', '--', 'src'], { cwd: ROOT, encoding: 'utf8' });

  const bins = {
    nginx: which('nginx'),
    wrk: WRK_BIN,
    squid: which('squid'),
    tinyproxy: which('tinyproxy'),
    mitmdump: which('mitmdump'),
  };
  const result = {
    schema: 1,
    generated_at: startedAt.toISOString(),
    smoke: SMOKE,
    config: {
      duration_s: DURATION_S,
      warmup_s: WARMUP_S,
      connections: CONNS,
      profiles: PROFILES,
      cookies_per_profile: COOKIES_PER_PROFILE,
      startup_runs: STARTUP_RUNS,
      repeat: REPEAT,
      peers_requested: PEERS,
      proxy_bin: path.relative(ROOT, PROXY_BIN),
      proxy_config: PROXY_CONFIG ?? null,
    },
    machine: {
      cpu_model: os.cpus()[0]?.model ?? null,
      nproc: typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length,
      total_mem_mb: Math.round(os.totalmem() / 1024 / 1024),
      platform: `${os.platform()} ${os.release()} ${os.arch()}`,
      hostname: os.hostname(),
      loadavg_at_start: os.loadavg().map((x) => round(x, 2)),
      node: process.version,
    },
    versions: {
      node: process.version,
      session_proxy: `${pkg.version}${git.status === 0 ? ` (${git.stdout.trim()}${gitDirty.stdout?.trim() ? ', src modified' : ''})` : ''}`,
      wrk: versionOf(bins.wrk, ['-v']),
      nginx: versionOf(bins.nginx, ['-v']),
      squid: versionOf(bins.squid, ['-v']),
      tinyproxy: versionOf(bins.tinyproxy, ['-v']),
      mitmproxy: versionOf(bins.mitmdump, ['--version']),
    },
    upstream: null,
    startup: null,
    seeding: null,
    scenarios: [],
    ratios: {},
    targets: [],
    checks,
    errors: [],
  };
  const errors = result.errors;

  log(
    `${SMOKE ? 'SMOKE run' : 'full run'}: ${DURATION_S}s per wrk run, ${WARMUP_S}s warm-up, ${PROFILES} profiles, peers: ${PEERS.join(', ') || 'none'}`,
  );
  log(`machine: ${result.machine.cpu_model}, ${result.machine.nproc} cpus, ${result.machine.total_mem_mb} MB, node ${process.version}`);

  const up = await startUpstream();
  result.upstream = { kind: up.kind, version: up.kind === 'nginx' ? result.versions.nginx : process.version };

  const scenarios = result.scenarios;
  const scenario = (name, label, extra = {}) => {
    const s = { name, label, status: 'pending', ...extra };
    scenarios.push(s);
    return s;
  };

  // 1. direct
  {
    const s = scenario('direct', `wrk -> ${up.kind} upstream (no proxy)`, { path: '/' });
    log('scenario direct');
    try {
      await measure(s, { targetPort: up.port, upPort: up.port, urlPath: '/', viaProxy: false, pid: null, tmpRoot });
    } catch (e) {
      s.status = 'error';
      s.error = e.message;
      errors.push(`direct: ${e.message}`);
    }
  }

  // 2. start-up time
  {
    log(`session-proxy start-up time (${STARTUP_RUNS} run${STARTUP_RUNS > 1 ? 's' : ''})`);
    const runs = [];
    try {
      for (let i = 0; i < STARTUP_RUNS; i++) runs.push(await measureStartup(up, tmpRoot));
      const firsts = runs.map((r) => r.first_response_ms);
      result.startup = {
        runs,
        median_ms: round(median(firsts), 1),
        min_ms: round(Math.min(...firsts), 1),
        max_ms: round(Math.max(...firsts), 1),
      };
    } catch (e) {
      result.startup = { runs, error: e.message };
      errors.push(`startup: ${e.message}`);
    }
  }

  // 3. session-proxy scenarios, each on a fresh process and data dir
  const spScenarios = [
    { name: 'session-proxy-fixed', label: 'fixed cookie on / (jar capture + injection), default profile', urlPath: '/' },
    { name: 'session-proxy-rotate', label: 'cookie changes on every response (/rotate): jar update + persistence on the hot path', urlPath: '/rotate' },
    {
      name: 'session-proxy-profiles',
      label: `${PROFILES} profiles x ${COOKIES_PER_PROFILE} cookies seeded; wrk cycles X-Session-Profile over them on /`,
      urlPath: '/',
      profiles: PROFILES,
    },
  ];
  for (const def of spScenarios) {
    const s = scenario(def.name, def.label, { path: def.urlPath, profiles: def.profiles ?? 1 });
    log(`scenario ${def.name}`);
    let sp;
    try {
      sp = await startSessionProxy(tmpRoot);
      s.pid = sp.rec.pid;
      const proxyPort = sp.port;
      // single request through the proxy first: must be 200
      const first = await httpGet({ proxyPort, upPort: up.port, urlPath: def.urlPath });
      if (first.status !== 200) throw new Error(`verification request through session-proxy returned HTTP ${first.status}`);

      if (def.name === 'session-proxy-fixed') {
        const echo = await echoCookies(proxyPort, up.port);
        check('fixed: captured sid cookie is injected', /(^|;\s*)sid=abc(;|$)/.test(echo), `Cookie sent upstream: ${JSON.stringify(echo)}`);
      } else if (def.name === 'session-proxy-rotate') {
        const second = await httpGet({ proxyPort, upPort: up.port, urlPath: '/rotate' });
        const sc = [second.headers['set-cookie'] ?? []].flat().join(' ');
        const m = /rot=([^;]+)/.exec(sc);
        const echo = await echoCookies(proxyPort, up.port);
        check(
          'rotate: latest rotating cookie is injected',
          !!m && echo.includes(`rot=${m[1]}`),
          `last Set-Cookie rot=${m?.[1]}, Cookie sent upstream: ${JSON.stringify(echo)}`,
        );
      } else {
        log(`  seeding ${PROFILES} profiles x ${COOKIES_PER_PROFILE} cookies through the proxy`);
        const seeding = await seedProfiles(proxyPort, up.port, PROFILES);
        // let any write-behind persistence settle before sampling memory
        await sleep(SMOKE ? 200 : 1000);
        seeding.rss_after = treeMemory(sp.rec.pid);
        seeding.data_dir = dirBytes(sp.dataDir);
        result.seeding = seeding;
        log(
          `  seeded ${seeding.ok}/${PROFILES} in ${seeding.duration_ms} ms (${seeding.failed} failed); RSS after seeding ${seeding.rss_after?.rss_mb} MB (peak ${seeding.rss_after?.peak_mb} MB)`,
        );
        if (seeding.ok === 0) throw new Error(`seeding failed: ${seeding.first_error}`);
        if (seeding.failed > 0) errors.push(`seeding: ${seeding.failed} of ${PROFILES} requests failed (first: ${seeding.first_error})`);
        for (const i of [0, PROFILES - 1]) {
          const echo = await echoCookies(proxyPort, up.port, { 'x-session-profile': `p${i}` });
          const n = (echo.match(/(^|;\s*)s\d+=/g) ?? []).length;
          check(`profiles: p${i} has ${COOKIES_PER_PROFILE} seeded cookies`, n === COOKIES_PER_PROFILE, `found ${n}: ${JSON.stringify(echo.slice(0, 200))}`);
        }
        const other = await echoCookies(proxyPort, up.port, { 'x-session-profile': 'bench-unseeded' });
        check('profiles: an unseeded profile gets no seeded cookies', !/(^|;\s*)s\d+=/.test(other), `Cookie sent upstream: ${JSON.stringify(other.slice(0, 200))}`);
      }

      await measure(s, {
        targetPort: proxyPort,
        upPort: up.port,
        urlPath: def.urlPath,
        viaProxy: true,
        profiles: def.profiles ?? 0,
        pid: sp.rec.pid,
        tmpRoot,
      });
      s.data_dir = dirBytes(sp.dataDir);
    } catch (e) {
      s.status = 'error';
      s.error = e.message;
      errors.push(`${def.name}: ${e.message}`);
      log(`  ERROR: ${e.message}`);
    } finally {
      if (sp) {
        s.stop = await stopSessionProxy(sp);
        if (!s.stop.clean) check(`${def.name}: SIGTERM stops the proxy cleanly`, false, JSON.stringify(s.stop));
        if (s.status === 'error') s.error += `\n  ${describeChild(sp.rec)}`;
      }
    }
  }

  // 4. peers
  for (const name of ALL_PEERS) {
    if (!PEERS.includes(name)) continue;
    const s = scenario(name, `${name} forwarding / (${name === 'mitmproxy' ? 'stickycookie=.' : 'no cache'})`, { path: '/' });
    log(`scenario ${name}`);
    const peer = await startPeer(name, up);
    if (peer.skipped) {
      s.status = 'skipped';
      s.reason = peer.skipped;
      log(`  skipped: ${peer.skipped}`);
      continue;
    }
    try {
      await measure(s, { targetPort: peer.port, upPort: up.port, urlPath: '/', viaProxy: true, pid: peer.rec.pid, tmpRoot });
    } catch (e) {
      s.status = 'error';
      s.error = `${e.message}\n  ${describeChild(peer.rec)}`;
      log(`  ERROR (peer, not fatal): ${e.message}`);
    } finally {
      await stopChild(peer.rec, { timeoutMs: 5000 });
    }
  }
  await stopChild(up.rec);

  // ------------------------------------------------------------ ratios & targets
  const by = Object.fromEntries(scenarios.map((s) => [s.name, s.status === 'ok' ? s : null]));
  const rps = (n, c = 'c32') => by[n]?.runs[c]?.rps ?? null;
  const p50 = (n) => by[n]?.runs.c1?.p50_ms ?? null;
  const ratio = (a, b) => (a !== null && b !== null && b > 0 ? round(a / b, 3) : null);
  const fixed = 'session-proxy-fixed';
  const R = result.ratios;
  R.throughput_c32 = {};
  R.throughput_c1 = {};
  for (const other of ['direct', ...ALL_PEERS]) {
    R.throughput_c32[`${fixed}/${other}`] = ratio(rps(fixed), rps(other));
    R.throughput_c1[`${fixed}/${other}`] = ratio(rps(fixed, 'c1'), rps(other, 'c1'));
  }
  R.added_p50_ms_c1 = {};
  for (const n of ['session-proxy-fixed', 'session-proxy-rotate', 'session-proxy-profiles', ...ALL_PEERS]) {
    R.added_p50_ms_c1[n] = p50(n) !== null && p50('direct') !== null ? round(p50(n) - p50('direct'), 3) : null;
  }
  R.rotate_over_fixed_c32 = ratio(rps('session-proxy-rotate'), rps(fixed));
  R.rotate_over_fixed_c1 = ratio(rps('session-proxy-rotate', 'c1'), rps(fixed, 'c1'));
  R.profiles_over_single_c32 = ratio(rps('session-proxy-profiles'), rps(fixed));
  R.profiles_over_single_c1 = ratio(rps('session-proxy-profiles', 'c1'), rps(fixed, 'c1'));
  const profRss = by['session-proxy-profiles']?.rss?.peak_mb ?? null;
  const seedRss = result.seeding?.rss_after?.rss_mb ?? null;
  R.profiles_rss_after_seeding_mb = seedRss;
  R.profiles_peak_rss_mb = profRss;
  R.startup_median_ms = result.startup?.median_ms ?? null;

  const target = (id, description, value, met, unit = '') =>
    result.targets.push({ id, description, value, unit, met: value === null ? null : met });
  const vs = (peer, t) => {
    const v = R.throughput_c32[`${fixed}/${peer}`];
    target(`throughput_vs_${peer}`, `session-proxy throughput (c32) >= ${t}x ${peer}`, v, v !== null && v >= t, 'x');
  };
  vs('squid', TARGETS.vsSquid);
  vs('tinyproxy', TARGETS.vsTinyproxy);
  vs('mitmproxy', TARGETS.vsMitmproxy);
  {
    const a = R.added_p50_ms_c1[fixed];
    const b = R.added_p50_ms_c1.squid;
    target('added_p50_vs_squid', "added p50 at 1 connection <= squid's", a !== null && b !== null ? a : null, a !== null && b !== null && a <= b, 'ms');
  }
  target('rotate_over_fixed', `rotate >= ${TARGETS.rotateOverFixed}x fixed (c32)`, R.rotate_over_fixed_c32, R.rotate_over_fixed_c32 >= TARGETS.rotateOverFixed, 'x');
  target(
    'profiles_over_single',
    `${PROFILES} profiles >= ${TARGETS.profilesOverSingle}x single profile (c32)`,
    R.profiles_over_single_c32,
    R.profiles_over_single_c32 >= TARGETS.profilesOverSingle,
    'x',
  );
  {
    const v = seedRss === null && profRss === null ? null : Math.max(seedRss ?? 0, profRss ?? 0);
    target('profiles_rss', `RSS with ${PROFILES} profiles < ${TARGETS.profilesRssMb} MB (max of after-seeding and peak under load)`, v, v < TARGETS.profilesRssMb, 'MB');
  }
  target('startup', `start-up (spawn -> first proxied 200) < ${TARGETS.startupMs} ms (median)`, R.startup_median_ms, R.startup_median_ms < TARGETS.startupMs, 'ms');

  result.finished_at = new Date().toISOString();
  result.machine.loadavg_at_end = os.loadavg().map((x) => round(x, 2));

  // ------------------------------------------------------------ print
  console.log('');
  console.log(
    `session-proxy benchmark${SMOKE ? ' (SMOKE)' : ''} — ${result.machine.cpu_model}, ${result.machine.nproc} cpus, ${result.machine.total_mem_mb} MB, node ${process.version}, upstream ${up.kind}`,
  );
  console.log(`wrk ${DURATION_S}s per run (${WARMUP_S}s warm-up${REPEAT > 1 ? `; median of ${REPEAT} runs` : ''}); c32 = -t2 -c32, c1 = -t1 -c1; non2xx = wrk status errors (>= 400)`);
  const load1 = result.machine.loadavg_at_start[0];
  if (load1 > result.machine.nproc / 2) {
    console.log(`NOTE: 1-min load average was ${load1} at start (${result.machine.nproc} cpus): other work was running, numbers are noisy`);
  }
  console.log('');
  printTable(scenarios);
  for (const s of scenarios) {
    if (s.status === 'skipped') console.log(`  ${s.name}: skipped — ${s.reason.split('\n')[0]}`);
    if (s.status === 'error') console.log(`  ${s.name}: ERROR — ${s.error.split('\n')[0]}`);
    if (s.status !== 'ok') continue;
    for (const c of CONNS) {
      const r = s.runs[c.key];
      if (!r.errors) continue;
      const d = r.error_detail;
      console.log(
        `  ${s.name} c${r.connections} errors: connect ${d.connect}, read ${d.read}, write ${d.write}, timeout ${d.timeout}` +
          (s.name === 'tinyproxy' && d.read && !d.connect && !d.write && !d.timeout
            ? ' (tinyproxy closes the client connection after each response, no keep-alive; wrk counts each close as a read error and reconnects)'
            : ''),
      );
    }
  }
  console.log('');
  console.log('ratios');
  for (const other of ['direct', ...ALL_PEERS]) {
    const a = R.throughput_c32[`${fixed}/${other}`];
    const b = R.throughput_c1[`${fixed}/${other}`];
    if (a === null && b === null) continue;
    console.log(`  session-proxy fixed / ${other.padEnd(9)} throughput: ${fmt(a, 2)}x (c32), ${fmt(b, 2)}x (c1)`);
  }
  for (const [n, v] of Object.entries(R.added_p50_ms_c1)) {
    if (v !== null) console.log(`  added p50 at 1 conn, ${n.padEnd(22)}: ${fmt(v, 3)} ms`);
  }
  console.log(`  rotate / fixed throughput: ${fmt(R.rotate_over_fixed_c32, 3)}x (c32), ${fmt(R.rotate_over_fixed_c1, 3)}x (c1)`);
  console.log(
    `  ${PROFILES} profiles / single throughput: ${fmt(R.profiles_over_single_c32, 3)}x (c32), ${fmt(R.profiles_over_single_c1, 3)}x (c1); RSS after seeding ${fmt(seedRss)} MB, peak under load ${fmt(profRss)} MB`,
  );
  if (result.seeding) {
    console.log(
      `  seeding: ${result.seeding.ok}/${PROFILES} profiles in ${result.seeding.duration_ms} ms, data dir ${fmt(result.seeding.data_dir.bytes / 1024 / 1024, 1)} MB in ${result.seeding.data_dir.files} files`,
    );
  }
  if (result.startup?.median_ms !== undefined) {
    console.log(
      `  start-up (spawn -> first proxied 200): median ${fmt(result.startup.median_ms)} ms over ${result.startup.runs.length} (min ${fmt(result.startup.min_ms)}, max ${fmt(result.startup.max_ms)}; listening line at ${fmt(median(result.startup.runs.map((r) => r.listening_line_ms ?? NaN)))} ms)`,
    );
  }
  console.log('');
  console.log('targets');
  for (const t of result.targets) {
    const tag = t.met === null ? 'N/A   ' : t.met ? 'MET   ' : 'MISSED';
    console.log(`  [${tag}] ${t.description}: ${t.value === null ? 'not measured' : `${t.value}${t.unit ? ` ${t.unit}` : ''}`}`);
  }
  const failedChecks = checks.filter((c) => !c.ok);
  if (failedChecks.length) {
    console.log('');
    console.log('sanity checks that FAILED (the numbers above may not mean what they say):');
    for (const c of failedChecks) console.log(`  - ${c.name}: ${c.detail}`);
  }

  // ------------------------------------------------------------ write JSON
  fs.mkdirSync(path.dirname(OUT), { recursive: true });
  const json = JSON.stringify(result, null, 2) + '\n';
  fs.writeFileSync(OUT, json);
  const written = [OUT];
  if (!ENV.BENCH_OUT) {
    const stamp = startedAt.toISOString().replace(/[:.]/g, '-').replace(/-\d{3}Z$/, 'Z');
    const copy = path.join(path.dirname(OUT), `${SMOKE ? 'smoke-' : ''}${stamp}.json`);
    fs.writeFileSync(copy, json);
    written.push(copy);
  }
  console.log('');
  console.log(`results written to ${written.map((p) => path.relative(process.cwd(), p) || p).join(' and ')}`);

  if (errors.length) {
    console.log('');
    console.log('errors:');
    for (const e of errors) console.log(`  - ${e.split('\n')[0]}`);
    return 1;
  }
  if (STRICT && result.targets.some((t) => t.met === false)) return 2;
  return 0;
}

// Stop by ourselves even if something hangs: generous bound from the configured durations.
const perRun = DURATION_S + WARMUP_S + 35;
const watchdogS = 7 * CONNS.length * REPEAT * perRun + 900;
const watchdog = setTimeout(() => {
  log(`watchdog: run exceeded ${watchdogS} s, aborting`);
  cleanup().finally(() => process.exit(1));
}, watchdogS * 1000);
watchdog.unref();

main()
  .then(async (code) => {
    await cleanup();
    process.exitCode = code;
  })
  .catch(async (e) => {
    log(`FAILED: ${e.stack ?? e}`);
    await cleanup();
    process.exitCode = 1;
  })
  .finally(() => clearTimeout(watchdog));
