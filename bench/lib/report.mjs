// Ratios, targets and the printed table, from the medians of the rounds.
import { ALL_PEERS, CONNS, TARGETS } from './settings.mjs'
import { median, round } from './util.mjs'

const fmt = (x, d = 1) => (x === null || x === undefined ? '-' : Number(x).toFixed(d))

/** Collapses a subject's rounds into medians per connection count. */
export function summarize (subject) {
  subject.runs = {}
  for (const [key, rounds] of Object.entries(subject.rounds)) {
    const pick = (k) => round(median(rounds.map((r) => r[k]).filter((v) => v !== null && v !== undefined)), 3)
    subject.runs[key] = {
      rps: round(median(rounds.map((r) => r.rps)), 1),
      cpu_us_per_req: pick('cpu_us_per_req'),
      p50_ms: pick('p50_ms'),
      p99_ms: pick('p99_ms'),
      non2xx: rounds.reduce((a, r) => a + r.non2xx, 0),
      errors: rounds.reduce((a, r) => a + r.errors, 0),
      rounds_rps: rounds.map((r) => r.rps),
      rounds_cpu_us_per_req: rounds.map((r) => r.cpu_us_per_req)
    }
  }
}

export function evaluate (result, { profiles, bigProfiles }) {
  const by = Object.fromEntries(result.scenarios.map((s) => [s.name, s.status === 'ok' ? s : null]))
  const rps = (n, c = 'c32') => by[n]?.runs[c]?.rps ?? null
  const cpu = (n, c = 'c32') => by[n]?.runs[c]?.cpu_us_per_req ?? null
  const p50 = (n) => by[n]?.runs.c1?.p50_ms ?? null
  const ratio = (a, b) => (a !== null && b !== null && b > 0 ? round(a / b, 3) : null)
  const defaults = 'session-proxy-defaults'
  const fixed = 'session-proxy-fixed'
  const R = result.ratios
  R.throughput_c32 = {}
  R.throughput_c1 = {}
  for (const sp of [defaults, fixed]) {
    for (const other of ['direct', 'bare', ...ALL_PEERS]) {
      R.throughput_c32[`${sp}/${other}`] = ratio(rps(sp), rps(other))
      R.throughput_c1[`${sp}/${other}`] = ratio(rps(sp, 'c1'), rps(other, 'c1'))
    }
  }
  R.cpu_us_per_req_c32 = Object.fromEntries(result.scenarios.filter((s) => s.status === 'ok').map((s) => [s.name, cpu(s.name)]))
  R.cpu_over_bare_c32 = {}
  for (const n of [defaults, fixed, 'session-proxy-rotate', 'session-proxy-profiles', ...ALL_PEERS]) R.cpu_over_bare_c32[n] = ratio(cpu(n), cpu('bare'))
  R.added_p50_ms_c1 = {}
  for (const n of ['bare', defaults, fixed, 'session-proxy-rotate', 'session-proxy-profiles', ...ALL_PEERS]) {
    R.added_p50_ms_c1[n] = p50(n) !== null && p50('direct') !== null ? round(p50(n) - p50('direct'), 3) : null
  }
  R.rotate_over_fixed_c32 = ratio(rps('session-proxy-rotate'), rps(fixed))
  R.profiles_over_single_c32 = ratio(rps('session-proxy-profiles'), rps(fixed))
  const profRss = by['session-proxy-profiles']?.rss?.peak_mb ?? null
  const seedRss = result.seeding?.rss_after?.rss_mb ?? null
  R.profiles_rss_after_seeding_mb = seedRss
  R.profiles_peak_rss_mb = profRss
  R.big_profiles_rss_mb = by['session-proxy-100k']?.rss?.peak_mb ?? result.big_seeding?.rss_after?.rss_mb ?? null
  R.startup_median_ms = result.startup?.median_ms ?? null

  const target = (id, description, value, met, unit = '') =>
    result.targets.push({ id, description, value, unit, met: value === null || value === undefined ? null : met })
  const vs = (peer, t) => {
    const v = R.throughput_c32[`${defaults}/${peer}`]
    target(`throughput_vs_${peer}`, `session-proxy at defaults (c32) >= ${t}x ${peer}`, v, v !== null && v >= t, 'x')
  }
  vs('squid', TARGETS.defaultsVsSquid)
  {
    const v = R.cpu_over_bare_c32[fixed]
    target('cpu_vs_bare', `fixed-cookie CPU per request <= ${TARGETS.cpuVsBare}x the bare Node reference`, v, v !== null && v <= TARGETS.cpuVsBare, 'x')
  }
  vs('tinyproxy', TARGETS.vsTinyproxy)
  vs('mitmproxy', TARGETS.vsMitmproxy)
  target('rotate_over_fixed', `rotate >= ${TARGETS.rotateOverFixed}x fixed (c32)`, R.rotate_over_fixed_c32, R.rotate_over_fixed_c32 >= TARGETS.rotateOverFixed, 'x')
  target('profiles_over_single', `${profiles} profiles >= ${TARGETS.profilesOverSingle}x single profile (c32)`, R.profiles_over_single_c32, R.profiles_over_single_c32 >= TARGETS.profilesOverSingle, 'x')
  {
    const v = seedRss === null && profRss === null ? null : Math.max(seedRss ?? 0, profRss ?? 0)
    target('profiles_rss', `RSS with ${profiles} profiles <= ${TARGETS.profilesRssMb} MB (max of after-seeding and peak under load)`, v, v <= TARGETS.profilesRssMb, 'MB')
  }
  if (bigProfiles > 0) {
    const s = by['session-proxy-100k']
    target('big_profiles', `${bigProfiles} profiles load and proxy (RSS reported)`, R.big_profiles_rss_mb, s !== null && (s.runs.c32?.rps ?? 0) > 0, 'MB')
  }
  {
    const a = R.added_p50_ms_c1[defaults]
    const b = R.added_p50_ms_c1.squid
    target('added_p50_vs_squid', "added p50 at 1 connection (defaults) <= squid's", a !== null && b !== null ? a : null, a !== null && b !== null && a <= b, 'ms')
  }
  target('startup', `start-up (spawn -> first proxied 200) < ${TARGETS.startupMs} ms (median)`, R.startup_median_ms, R.startup_median_ms < TARGETS.startupMs, 'ms')
}

export function printTable (scenarios) {
  const rows = [['scenario', 'conns', 'req/s', 'CPU us/req', 'p50 ms', 'p99 ms', 'non2xx', 'errors', 'peak RSS MB']]
  for (const s of scenarios) {
    if (s.status !== 'ok') {
      rows.push([s.name, '-', s.status, '', '', '', '', '', ''])
      continue
    }
    for (const c of CONNS) {
      const r = s.runs[c.key]
      if (r === undefined) continue
      rows.push([s.name, String(c.connections), fmt(r.rps, 0), fmt(r.cpu_us_per_req, 1), fmt(r.p50_ms, 3), fmt(r.p99_ms, 3), String(r.non2xx), String(r.errors), s.rss ? fmt(s.rss.peak_mb, 1) : '-'])
    }
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)))
  const line = (r) => r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ')
  console.log(line(rows[0]))
  console.log(widths.map((w) => '-'.repeat(w)).join('  '))
  for (const r of rows.slice(1)) console.log(line(r))
}

export function printReport (result) {
  const R = result.ratios
  console.log('')
  console.log('ratios (medians of the rounds)')
  for (const [k, v] of Object.entries(R.throughput_c32)) if (v !== null) console.log(`  throughput ${k.padEnd(40)} ${fmt(v, 2)}x (c32), ${fmt(R.throughput_c1[k], 2)}x (c1)`)
  for (const [k, v] of Object.entries(R.cpu_over_bare_c32)) if (v !== null) console.log(`  CPU per request ${k.padEnd(26)} ${fmt(v, 2)}x bare (${fmt(R.cpu_us_per_req_c32[k], 1)} vs ${fmt(R.cpu_us_per_req_c32.bare, 1)} us)`)
  for (const [n, v] of Object.entries(R.added_p50_ms_c1)) if (v !== null) console.log(`  added p50 at 1 conn, ${n.padEnd(24)} ${fmt(v, 3)} ms`)
  console.log(`  rotate / fixed: ${fmt(R.rotate_over_fixed_c32, 3)}x; profiles / single: ${fmt(R.profiles_over_single_c32, 3)}x; RSS after seeding ${fmt(R.profiles_rss_after_seeding_mb)} MB, peak ${fmt(R.profiles_peak_rss_mb)} MB`)
  if (result.seeding) console.log(`  seeding: ${result.seeding.ok}/${result.seeding.profiles} profiles in ${result.seeding.duration_ms} ms`)
  if (result.big_seeding) console.log(`  big seeding: ${result.big_seeding.ok}/${result.big_seeding.profiles} profiles x ${result.big_seeding.cookies_per_profile} cookies in ${result.big_seeding.duration_ms} ms, RSS ${fmt(R.big_profiles_rss_mb)} MB`)
  if (result.startup?.median_ms !== undefined) console.log(`  start-up: median ${fmt(result.startup.median_ms)} ms over ${result.startup.runs.length}`)
  console.log('')
  console.log('targets')
  for (const t of result.targets) {
    const tag = t.met === null ? 'N/A   ' : t.met ? 'MET   ' : 'MISSED'
    console.log(`  [${tag}] ${t.description}: ${t.value === null ? 'not measured' : `${t.value}${t.unit ? ` ${t.unit}` : ''}`}`)
  }
}
