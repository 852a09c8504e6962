// session-proxy web page. Plain browser JavaScript, no build step: it reads
// only the admin API under /_session/. All text goes in through textContent,
// never innerHTML, because cookie names, URLs and messages come from servers.
'use strict'

const API = '/_session'
const state = { profile: null, source: null, pollTimer: null, lastSeq: 0, filter: '', refreshTimer: null }

const $ = (id) => document.getElementById(id)

function el (tag, attrs, ...children) {
  const e = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue
    if (k === 'class') e.className = v
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v)
    else e.setAttribute(k, v === true ? '' : String(v))
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue
    e.append(c instanceof Node ? c : document.createTextNode(String(c)))
  }
  return e
}

// Beyond loopback the admin API needs its token (admin.token). The page asks
// for it once and keeps it for this tab only. Every call also sends
// x-session-proxy-admin, which a page of another origin cannot add without a
// preflight the proxy never answers.
const TOKEN_KEY = 'session-proxy-admin-token'

function adminHeaders (extra) {
  const headers = { 'x-session-proxy-admin': '1', ...extra }
  const token = sessionStorage.getItem(TOKEN_KEY)
  if (token) headers.authorization = `Bearer ${token}`
  return headers
}

async function api (path, opts, retried) {
  const r = await fetch(API + path, { ...opts, headers: adminHeaders(opts?.headers) })
  const text = await r.text()
  let body = null
  try { body = JSON.parse(text) } catch { body = text }
  if (r.status === 401 && !retried && body?.error === 'SP_ADMIN_AUTH_REQUIRED') {
    const token = prompt('The admin API needs its token (admin.token):')
    if (token) {
      sessionStorage.setItem(TOKEN_KEY, token.trim())
      return await api(path, opts, true)
    }
  }
  if (!r.ok) throw new Error(typeof body === 'object' && body !== null && body.message ? body.message : `${r.status} ${text}`)
  return body
}

function setStatus (text, kind) {
  const s = $('status')
  s.textContent = text
  s.className = 'status ' + (kind ?? '')
}

// Profiles -----------------------------------------------------------------

async function loadProfiles () {
  const { profiles } = await api('/profiles')
  const list = $('profiles')
  list.replaceChildren(...profiles.map((p) => el('li', {},
    el('button', { type: 'button', class: p.name === state.profile ? 'profile active' : 'profile', 'data-profile': p.name, onclick: () => selectProfile(p.name) },
      el('span', { class: 'name' }, p.name), el('span', { class: 'count' }, String(p.cookies))))))
  if (state.profile === null && profiles.length > 0) {
    const fromHash = decodeURIComponent(location.hash.slice(1))
    const initial = profiles.find((p) => p.name === fromHash) ?? profiles.find((p) => p.name === 'default') ?? profiles[0]
    await selectProfile(initial.name)
  }
}

async function selectProfile (name) {
  state.profile = name
  history.replaceState(null, '', '#' + encodeURIComponent(name))
  for (const b of document.querySelectorAll('.profile')) b.classList.toggle('active', b.dataset.profile === name)
  $('har-link').href = `${API}/profiles/${encodeURIComponent(name)}/har?download=1`
  $('har-link').download = `${name}.har`
  await Promise.all([loadCookies(), loadCapture(), startTimeline()])
}

// Jar ----------------------------------------------------------------------

function flag (text, on, title) {
  return on ? el('span', { class: 'flag', title }, text) : null
}

async function loadCookies () {
  const name = state.profile
  const { cookies } = await api(`/profiles/${encodeURIComponent(name)}/cookies`)
  if (name !== state.profile) return
  $('jar-count').textContent = String(cookies.length)
  $('jar-empty').hidden = cookies.length > 0
  $('jar').querySelector('tbody').replaceChildren(...cookies.map((c) => el('tr', { 'data-cookie': c.name },
    el('td', { class: 'mono strong' }, c.name),
    el('td', { class: 'mono value', title: c.value }, c.value),
    el('td', { class: 'mono' }, c.domain),
    el('td', { class: 'mono' }, c.path),
    el('td', {}, c.expires === null ? el('span', { class: 'muted' }, 'session') : new Date(c.expires).toLocaleString()),
    el('td', { class: 'flags' },
      flag('Secure', c.secure, 'sent over https only'),
      flag('HttpOnly', c.httpOnly, 'not visible to page scripts'),
      flag('host-only', c.hostOnly, 'no Domain attribute: sent to this exact host only'),
      c.sameSite ? el('span', { class: 'flag' }, 'SameSite=' + c.sameSite) : null),
    el('td', {}, el('button', {
      type: 'button',
      class: 'danger small',
      title: `delete ${c.name}`,
      onclick: () => deleteCookie(c)
    }, 'Delete')))))
}

async function deleteCookie (c) {
  const path = [c.domain, c.path, c.name].map(encodeURIComponent).join('/')
  await api(`/profiles/${encodeURIComponent(state.profile)}/cookies/${path}`, { method: 'DELETE' })
  await Promise.all([loadCookies(), loadProfiles()])
}

function scheduleRefresh () {
  clearTimeout(state.refreshTimer)
  state.refreshTimer = setTimeout(() => { loadCookies().catch(showError); loadProfiles().catch(showError); loadCapture().catch(showError) }, 150)
}

// Capture ------------------------------------------------------------------

async function loadCapture () {
  const c = await api(`/profiles/${encodeURIComponent(state.profile)}/capture`)
  $('capture-toggle').checked = c.enabled
  $('har-link').textContent = `HAR (${c.entries})`
}

// Timeline -----------------------------------------------------------------

const short = (hash) => hash ? hash.slice(0, 8) : ''

function describe (e) {
  switch (e.type) {
    case 'cookie.set': return [`${e.cookie.name} set`, `${e.cookie.domain}${e.cookie.path}`]
    case 'cookie.changed': return [`${e.cookie.name} changed`, e.changed.join(', ')]
    case 'cookie.deleted': return [`${e.cookie.name} deleted`, `by ${e.by}`]
    case 'cookie.expired': return [`${e.cookie.name} expired`, e.cookie.expires ?? '']
    case 'cookie.evicted': return [`${e.cookie.name} evicted`, 'jar limit reached']
    case 'cookie.rejected': return [`${e.name ?? 'cookie'} rejected: ${e.reason}`, e.message]
    case 'jar.cleared': return ['jar cleared', '']
    case 'session.rotated': return [`${e.name} rotated`, `${short(e.from)} → ${short(e.to)}${e.fixation ? ' · login-time fixation protection' : ''}`]
    case 'session.loggedOut': return ['logged out', `${e.signal}${e.detail ? ': ' + e.detail : ''}`]
    case 'login.started': return [`login started (${e.flow})`, `${e.relogin ? 're-login' : 'login'} · ${e.trigger}`]
    case 'login.succeeded': return [`login succeeded (${e.flow})`, `${e.steps} steps · ${e.durationMs} ms${e.relogin ? ' · re-login' : ''}`]
    case 'login.failed': return [`login failed (${e.flow})`, `${e.error} · ${e.steps} steps · ${e.durationMs} ms`]
    case 'csrf.captured': return [`CSRF token ${e.name} captured`, e.source]
    case 'csrf.refreshed': return [`CSRF token ${e.name} refreshed`, e.source]
    case 'request.replayed': return ['request replayed', `#${e.originalRequestId} · ${e.reason}`]
    default: return [e.type, '']
  }
}

function category (type) {
  if (type.startsWith('login.') || type.startsWith('session.')) return 'session'
  if (type.startsWith('csrf.') || type.startsWith('request.')) return 'session'
  return 'cookie'
}

function tone (e) {
  if (e.type === 'cookie.rejected' || e.type === 'login.failed' || e.type === 'session.loggedOut') return 'bad'
  if (e.type === 'login.succeeded' || e.type === 'session.rotated') return 'good'
  if (e.type.startsWith('login.') || e.type.startsWith('csrf.') || e.type === 'request.replayed') return 'info'
  return 'plain'
}

function renderEvent (e) {
  const [title, detail] = describe(e)
  const time = new Date(e.time)
  const li = el('li', { class: `event ${tone(e)} cat-${category(e.type)}`, 'data-type': e.type, 'data-seq': e.seq },
    el('time', { datetime: e.time, title: e.time }, time.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false })),
    el('span', { class: 'type' }, e.type),
    el('span', { class: 'title' }, title,
      e.type === 'session.rotated' && e.fixation ? el('span', { class: 'badge' }, 'fixation protection') : null),
    el('span', { class: 'detail' }, detail),
    e.requestId !== null && e.requestId !== undefined ? el('span', { class: 'req', title: 'the request that caused it (_requestId in the HAR)' }, `#${e.requestId}`) : el('span', { class: 'req' }))
  li.hidden = state.filter !== '' && category(e.type) !== state.filter
  return li
}

function addEvents (events) {
  if (events.length === 0) return
  const list = $('timeline')
  for (const e of events) {
    if (e.seq <= state.lastSeq) continue
    state.lastSeq = e.seq
    list.prepend(renderEvent(e))
    scheduleRefresh()
  }
  while (list.children.length > 500) list.lastElementChild.remove()
  $('timeline-empty').hidden = list.children.length > 0
}

async function startTimeline () {
  state.source?.close()
  state.source = null
  clearInterval(state.pollTimer)
  state.lastSeq = 0
  $('timeline').replaceChildren()
  const name = state.profile
  const page = await api(`/profiles/${encodeURIComponent(name)}/events?limit=200`)
  if (name !== state.profile) return
  addEvents(page.events)
  $('timeline-empty').hidden = page.events.length > 0
  // EventSource cannot send the token: with one, poll instead.
  if (sessionStorage.getItem(TOKEN_KEY)) {
    setStatus('live (polling)', 'ok')
    $('live').classList.add('on')
    state.pollTimer = setInterval(() => {
      if (name !== state.profile) return
      api(`/profiles/${encodeURIComponent(name)}/events?since=${state.lastSeq}&limit=500`).then((p) => addEvents(p.events)).catch(showError)
    }, 2000)
    return
  }
  const source = new EventSource(`${API}/profiles/${encodeURIComponent(name)}/events?since=${page.lastSeq}`)
  state.source = source
  source.onopen = () => { setStatus('live', 'ok'); $('live').classList.add('on') }
  source.onerror = () => { setStatus('reconnecting…', 'warn'); $('live').classList.remove('on') }
  source.onmessage = (m) => { addEvents([JSON.parse(m.data)]) }
}

// Explain ------------------------------------------------------------------

function ruleList (title, rules) {
  if (rules.length === 0) return el('p', { class: 'muted' }, `${title}: none apply.`)
  return el('div', {}, el('h3', {}, title), el('ul', { class: 'rules' }, rules.map((r) => el('li', { class: r.applies ? '' : 'muted' },
    el('span', { class: 'mono strong' }, r.name), ': ', el('span', { class: 'mono' }, r.value),
    el('span', { class: 'muted' }, ` (${r.rule}, match ${r.match}${r.note ? ', ' + r.note : ''})`)))))
}

async function runExplain (ev) {
  ev.preventDefault()
  const q = new URLSearchParams({ url: $('explain-url').value, method: $('explain-method').value, site: $('explain-site').value })
  const out = $('explain-result')
  try {
    const r = await api(`/profiles/${encodeURIComponent(state.profile)}/explain?${q}`)
    out.replaceChildren(
      el('p', {}, el('span', { class: 'muted' }, 'Cookie header: '), el('code', { class: 'mono' }, r.cookieHeader === '' ? '(none)' : r.cookieHeader)),
      el('table', { class: 'grid explain' },
        el('thead', {}, el('tr', {}, el('th', {}, 'Cookie'), el('th', {}, 'Domain / path'), el('th', {}, 'Sent'), el('th', {}, 'Why not'))),
        el('tbody', {}, r.cookies.map((c) => el('tr', { class: c.sent ? 'sent' : 'not-sent', 'data-cookie': c.name },
          el('td', { class: 'mono strong' }, c.name),
          el('td', { class: 'mono' }, c.domain + c.path),
          el('td', {}, c.sent ? el('span', { class: 'yes' }, 'sent') : el('span', { class: 'no' }, 'not sent')),
          el('td', {}, c.reasons.map((x) => el('div', { class: 'reason' }, el('span', { class: 'flag' }, x.code), ' ', x.message))))))),
      ruleList('Default headers', r.headers),
      ruleList('Auth', r.auth),
      ruleList('CSRF', r.csrf))
  } catch (err) {
    out.replaceChildren(el('p', { class: 'error' }, err.message))
  }
}

// Wiring -------------------------------------------------------------------

function showError (err) {
  setStatus(err.message, 'bad')
}

async function main () {
  $('explain-form').addEventListener('submit', (ev) => { runExplain(ev).catch(showError) })
  // A plain link cannot send the token: with one, download through fetch.
  $('har-link').addEventListener('click', (ev) => {
    if (!sessionStorage.getItem(TOKEN_KEY)) return
    ev.preventDefault()
    const a = ev.currentTarget
    fetch(a.href, { headers: adminHeaders() }).then(async (r) => {
      if (!r.ok) throw new Error(`HAR download: ${r.status}`)
      const url = URL.createObjectURL(await r.blob())
      const link = el('a', { href: url, download: a.download })
      link.click()
      setTimeout(() => URL.revokeObjectURL(url), 10_000)
    }).catch(showError)
  })
  $('timeline-filter').addEventListener('change', (ev) => {
    state.filter = ev.target.value
    for (const li of $('timeline').children) li.hidden = state.filter !== '' && !li.classList.contains('cat-' + state.filter)
  })
  $('clear-jar').addEventListener('click', async () => {
    if (!confirm(`Delete every cookie of profile ${state.profile}?`)) return
    await api(`/profiles/${encodeURIComponent(state.profile)}/cookies`, { method: 'DELETE' }).catch(showError)
    scheduleRefresh()
  })
  $('capture-toggle').addEventListener('change', async (ev) => {
    await api(`/profiles/${encodeURIComponent(state.profile)}/capture`, {
      method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ enabled: ev.target.checked })
    }).catch(showError)
    await loadCapture().catch(showError)
  })
  const health = await api('/health')
  $('version').textContent = 'v' + health.version
  await loadProfiles()
  if (state.profile === null) setStatus('no profiles yet', 'warn')
  setInterval(() => { loadProfiles().catch(() => {}); if (state.profile !== null) loadCapture().catch(() => {}) }, 5000)
}

main().catch(showError)
