// @ts-check
// session-proxy web page. Plain browser JavaScript, no build step: it reads
// only the admin API under /_session/. All text goes in through textContent,
// never innerHTML, because cookie names, URLs and messages come from servers.
// Typed with JSDoc; `npm run typecheck` checks it (test/tsconfig.json).
'use strict'

/**
 * @typedef {{ name: string, value: string, domain: string, path: string, expires: string | null, secure: boolean, httpOnly: boolean, sameSite: string | null, hostOnly: boolean }} JarCookie
 * @typedef {{ name: string, domain: string, path: string, expires: string | null }} CookieRef
 * @typedef {{ type: string, seq: number, time: string, profile: string, requestId: number | null, url?: string, [field: string]: any }} SessionEvent
 * @typedef {'sent-with-session' | 'logged-out' | 'renewed' | 'replayed'} ExchangeMark
 * @typedef {{ requestId: number, method: string, url: string, status: number, profile: string, time: string, totalMs: number, marks: ExchangeMark[], events: Array<{ seq: number, type: string }>, error: { code: string, message: string } | null }} ExchangeSummary
 * @typedef {ExchangeSummary & { requestHeaders: Array<[string, string]>, responseHeaders: Array<[string, string]>, redacted: boolean, responseBytes: number }} ExchangeDetail
 * @typedef {{ method?: string, headers?: Record<string, string>, body?: string }} ApiOptions
 */

const API = '/_session'
/** @type {{ profile: string | null, source: EventSource | null, pollTimer: ReturnType<typeof setInterval> | undefined, lastSeq: number, filter: string, refreshTimer: ReturnType<typeof setTimeout> | undefined, openExchange: number | null }} */
const state = { profile: null, source: null, pollTimer: undefined, lastSeq: 0, filter: '', refreshTimer: undefined, openExchange: null }

/** @param {string} id */
const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id))
/** @param {string} id */
const field = (id) => /** @type {HTMLInputElement} */ (document.getElementById(id))

/** The selected profile (the page acts on one at a time). */
function current () {
  if (state.profile === null) throw new Error('no profile selected')
  return state.profile
}

/** `/profiles/NAME` of the selected profile. */
const profilePath = () => `/profiles/${encodeURIComponent(current())}`

/**
 * @param {string} tag
 * @param {Record<string, unknown> | null} [attrs]
 * @param {...unknown} children
 * @returns {HTMLElement}
 */
function el (tag, attrs, ...children) {
  const e = document.createElement(tag)
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue
    if (k === 'class') e.className = String(v)
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), /** @type {EventListener} */ (v))
    else e.setAttribute(k, v === true ? '' : String(v))
  }
  for (const c of children.flat(Infinity)) {
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

/**
 * @param {Record<string, string>} [extra]
 * @returns {Record<string, string>}
 */
function adminHeaders (extra) {
  /** @type {Record<string, string>} */
  const headers = { 'x-session-proxy-admin': '1', ...extra }
  const token = sessionStorage.getItem(TOKEN_KEY)
  if (token) headers.authorization = `Bearer ${token}`
  return headers
}

/**
 * Calls the admin API; throws an Error with the proxy's message on a refusal.
 * @param {string} path
 * @param {ApiOptions} [opts]
 * @param {boolean} [retried]
 * @returns {Promise<any>}
 */
async function api (path, opts, retried) {
  const r = await fetch(API + path, { ...opts, headers: adminHeaders(opts?.headers) })
  const text = await r.text()
  /** @type {any} */
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

/**
 * @param {string} text
 * @param {string} [kind]
 */
function setStatus (text, kind) {
  const s = $('status')
  s.textContent = text
  s.className = 'status ' + (kind ?? '')
}

// Profiles -----------------------------------------------------------------

async function loadProfiles () {
  /** @type {{ profiles: Array<{ name: string, cookies: number }> }} */
  const { profiles } = await api('/profiles')
  const list = $('profiles')
  list.replaceChildren(...profiles.map((p) => el('li', {},
    el('button', { type: 'button', class: p.name === state.profile ? 'profile active' : 'profile', 'data-profile': p.name, onclick: () => { selectProfile(p.name).catch(showError) } },
      el('span', { class: 'name' }, p.name), el('span', { class: 'count' }, String(p.cookies))))))
  if (state.profile !== null && !profiles.some((p) => p.name === state.profile)) state.profile = null
  if (state.profile === null && profiles.length > 0) {
    const fromHash = decodeURIComponent(location.hash.slice(1))
    const initial = profiles.find((p) => p.name === fromHash) ?? profiles.find((p) => p.name === 'default') ?? profiles[0]
    await selectProfile(initial.name)
  }
}

/** @param {string} name */
async function selectProfile (name) {
  state.profile = name
  state.openExchange = null
  $('exchange-detail').hidden = true
  history.replaceState(null, '', '#' + encodeURIComponent(name))
  for (const b of document.querySelectorAll('.profile')) b.classList.toggle('active', /** @type {HTMLElement} */ (b).dataset.profile === name)
  const base = `${API}/profiles/${encodeURIComponent(name)}`
  setDownload('har-link', `${base}/har?download=1`, `${name}.har`)
  setDownload('cookies-export', `${base}/cookies.txt`, `${name}.cookies.txt`)
  setDownload('session-export', `${base}/session.json`, `${name}.session.json`)
  hideCookieForm()
  await Promise.all([loadCookies(), loadCapture(), loadExchanges(), startTimeline()])
}

/**
 * @param {string} id
 * @param {string} href
 * @param {string} filename
 */
function setDownload (id, href, filename) {
  const a = /** @type {HTMLAnchorElement} */ ($(id))
  a.href = href
  a.download = filename
}

/** @param {SubmitEvent} ev */
async function createProfile (ev) {
  ev.preventDefault()
  const name = field('profile-name').value.trim()
  await api('/profiles', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name }) })
  field('profile-name').value = ''
  await loadProfiles()
  await selectProfile(name)
}

async function deleteProfile () {
  const name = current()
  if (!confirm(`Delete profile ${name} with its cookies and files?`)) return
  await api(`/profiles/${encodeURIComponent(name)}`, { method: 'DELETE' })
  state.profile = null
  history.replaceState(null, '', '#')
  await loadProfiles()
  if (state.profile === null) setStatus('no profiles yet', 'warn')
}

// Jar ----------------------------------------------------------------------

/**
 * @param {string} text
 * @param {boolean} on
 * @param {string} title
 */
function flag (text, on, title) {
  return on ? el('span', { class: 'flag', title }, text) : null
}

async function loadCookies () {
  const name = current()
  /** @type {{ cookies: JarCookie[] }} */
  const { cookies } = await api(`/profiles/${encodeURIComponent(name)}/cookies`)
  if (name !== state.profile) return
  $('jar-count').textContent = String(cookies.length)
  $('jar-empty').hidden = cookies.length > 0
  const rows = /** @type {HTMLElement} */ ($('jar').querySelector('tbody'))
  rows.replaceChildren(...cookies.map((c) => el('tr', { 'data-cookie': c.name },
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
    el('td', { class: 'row-actions' },
      el('button', { type: 'button', class: 'secondary small edit', title: `edit ${c.name}`, onclick: () => showCookieForm(c) }, 'Edit'),
      el('button', { type: 'button', class: 'danger small delete', title: `delete ${c.name}`, onclick: () => { deleteCookie(c).catch(showError) } }, 'Delete')))))
}

/** @param {JarCookie} c */
async function deleteCookie (c) {
  const path = [c.domain, c.path, c.name].map(encodeURIComponent).join('/')
  await api(`${profilePath()}/cookies/${path}`, { method: 'DELETE' })
  await Promise.all([loadCookies(), loadProfiles()])
}

/**
 * `2026-12-01T10:00:00.000Z` -> the local `2026-12-01T11:00:00` a datetime-local input shows.
 * @param {string} iso
 */
function toLocalInput (iso) {
  const d = new Date(iso)
  const pad = (/** @type {number} */ n) => String(n).padStart(2, '0')
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`
}

/**
 * Opens the form empty (add) or filled from a cookie (edit).
 * @param {JarCookie | null} c
 */
function showCookieForm (c) {
  const form = /** @type {HTMLFormElement} */ ($('cookie-form'))
  form.reset()
  form.hidden = false
  $('cookie-error').textContent = ''
  field('cookie-name').readOnly = c !== null
  if (c !== null) {
    field('cookie-name').value = c.name
    field('cookie-value').value = c.value
    field('cookie-domain').value = c.domain
    field('cookie-path').value = c.path
    field('cookie-expires').value = c.expires === null ? '' : toLocalInput(c.expires)
    field('cookie-secure').checked = c.secure
    field('cookie-httponly').checked = c.httpOnly
    field('cookie-samesite').value = c.sameSite ?? ''
  }
  const first = c === null ? field('cookie-name') : field('cookie-value')
  first.focus()
}

function hideCookieForm () {
  $('cookie-form').hidden = true
}

/** @param {SubmitEvent} ev */
async function saveCookie (ev) {
  ev.preventDefault()
  const name = field('cookie-name').value.trim()
  /** @type {Record<string, unknown>} */
  const body = {
    value: field('cookie-value').value,
    domain: field('cookie-domain').value.trim(),
    path: field('cookie-path').value.trim() || '/',
    secure: field('cookie-secure').checked,
    httpOnly: field('cookie-httponly').checked
  }
  const expires = field('cookie-expires').value
  if (expires !== '') body.expires = new Date(expires).toISOString()
  const sameSite = field('cookie-samesite').value
  if (sameSite !== '') body.sameSite = sameSite
  try {
    await api(`${profilePath()}/cookies/${encodeURIComponent(name)}`, { method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  } catch (err) {
    $('cookie-error').textContent = /** @type {Error} */ (err).message
    return
  }
  hideCookieForm()
  await Promise.all([loadCookies(), loadProfiles()])
}

/**
 * Reads a chosen file and PUTs it (cookies.txt or session.json import).
 * @param {HTMLInputElement} input
 * @param {string} path
 * @param {string} type
 */
async function importFile (input, path, type) {
  const file = input.files?.[0]
  input.value = ''
  if (file === undefined) return
  const r = await api(`${profilePath()}/${path}`, { method: 'PUT', headers: { 'content-type': type }, body: await file.text() })
  setStatus(typeof r?.imported === 'number' ? `imported ${r.imported} cookies from ${file.name}` : `imported ${file.name}`, 'ok')
  await Promise.all([loadCookies(), loadProfiles()])
}

function scheduleRefresh () {
  clearTimeout(state.refreshTimer)
  state.refreshTimer = setTimeout(() => {
    if (state.profile === null) return
    loadCookies().catch(showError); loadProfiles().catch(showError); loadCapture().catch(showError); loadExchanges().catch(showError)
  }, 150)
}

// Capture and exchanges ----------------------------------------------------

async function loadCapture () {
  const c = await api(`${profilePath()}/capture`)
  field('capture-toggle').checked = c.enabled
  $('har-link').textContent = `HAR (${c.entries})`
}

/** @type {Record<ExchangeMark, [string, string]>} */
const MARKS = {
  'sent-with-session': ['session', 'sent with the session (Cookie or Authorization)'],
  'logged-out': ['logged out', 'the upstream answered it logged out'],
  renewed: ['renewed', 'the session was renewed for it (re-login)'],
  replayed: ['replayed', 'sent again after a login or a CSRF refresh']
}

/** @param {ExchangeMark[]} marks */
function markBadges (marks) {
  if (marks.length === 0) return el('span', { class: 'muted' }, 'no session')
  return marks.map((m) => el('span', { class: `mark m-${m === 'sent-with-session' ? 'session' : m}`, title: MARKS[m][1], 'data-mark': m }, MARKS[m][0]))
}

/** @param {string} iso */
const clock = (iso) => new Date(iso).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false })

async function loadExchanges () {
  const name = current()
  /** @type {{ exchanges: ExchangeSummary[] }} */
  const { exchanges } = await api(`/profiles/${encodeURIComponent(name)}/exchanges`)
  if (name !== state.profile) return
  $('exchange-count').textContent = String(exchanges.length)
  $('exchanges-empty').hidden = exchanges.length > 0
  const rows = /** @type {HTMLElement} */ ($('exchanges').querySelector('tbody'))
  rows.replaceChildren(...exchanges.map((x) => el('tr', {
    class: `exchange${x.requestId === state.openExchange ? ' open' : ''}${x.status >= 400 || x.error !== null ? ' failed' : ''}`,
    'data-request-id': x.requestId,
    'data-marks': x.marks.join(' '),
    tabindex: 0,
    onclick: () => { openExchange(x.requestId).catch(showError) },
    onkeydown: (/** @type {KeyboardEvent} */ e) => { if (e.key === 'Enter') openExchange(x.requestId).catch(showError) }
  },
  el('td', { class: 'muted nowrap' }, el('time', { datetime: x.time, title: x.time }, clock(x.time))),
  el('td', { class: 'mono strong' }, x.method),
  el('td', { class: 'mono url', title: x.url }, x.url),
  el('td', { class: 'mono' }, x.error !== null ? el('span', { class: 'no', title: x.error.message }, `${x.status} ${x.error.code}`) : String(x.status)),
  el('td', {}, x.profile),
  el('td', { class: 'marks' }, markBadges(x.marks)),
  el('td', { class: 'muted num' }, String(Math.round(x.totalMs))))))
}

/**
 * @param {string} title
 * @param {Array<[string, string]>} headers
 */
function headerTable (title, headers) {
  return el('div', { class: 'headers' }, el('h3', {}, title),
    headers.length === 0
      ? el('p', { class: 'muted' }, 'none')
      : el('table', { class: 'grid headers-table' }, el('tbody', {}, headers.map(([n, v]) => el('tr', {}, el('th', { class: 'mono' }, n), el('td', { class: 'mono' }, v))))))
}

/**
 * Shows one exchange's headers under the list (also from a timeline link).
 * @param {number} id
 */
async function openExchange (id) {
  state.openExchange = id
  const detail = $('exchange-detail')
  detail.hidden = false
  for (const tr of $('exchanges').querySelectorAll('tr.exchange')) tr.classList.toggle('open', /** @type {HTMLElement} */ (tr).dataset.requestId === String(id))
  /** @type {ExchangeDetail} */
  let x
  try {
    x = await api(`${profilePath()}/exchanges/${id}`)
  } catch (err) {
    detail.replaceChildren(el('p', { class: 'muted', 'data-request-id': id }, `Request #${id} was not captured (${/** @type {Error} */ (err).message}). Turn on “capture traffic” to keep the next exchanges.`))
    detail.scrollIntoView({ block: 'nearest' })
    return
  }
  if (state.openExchange !== id) return
  detail.replaceChildren(
    el('div', { class: 'detail-head', 'data-request-id': id },
      el('span', { class: 'mono strong' }, `${x.method} ${x.url}`), ' ',
      el('span', { class: 'mono' }, `→ ${x.status}`), ' ', markBadges(x.marks),
      el('button', { type: 'button', class: 'secondary small close', onclick: () => { detail.hidden = true; state.openExchange = null } }, 'Close')),
    el('p', { class: 'muted' }, `request #${x.requestId} · ${x.time} · ${Math.round(x.totalMs)} ms · ${x.responseBytes} bytes`,
      x.redacted ? ' · cookie, set-cookie and authorization values redacted' : ' · not redacted (capture.redact: false)',
      x.events.length > 0 ? ` · events: ${x.events.map((e) => e.type).join(', ')}` : ''),
    ...(x.error !== null ? [el('p', { class: 'error' }, `${x.error.code}: ${x.error.message}`)] : []),
    el('div', { class: 'header-columns' }, headerTable('Request headers', x.requestHeaders), headerTable('Response headers', x.responseHeaders)))
  detail.scrollIntoView({ block: 'nearest' })
}

// Timeline -----------------------------------------------------------------

/** @param {string | undefined} hash */
const short = (hash) => hash ? hash.slice(0, 8) : ''

/**
 * @param {SessionEvent} e
 * @returns {[string, string]}
 */
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
    case 'request.replayed': return ['request replayed', e.reason]
    default: return [e.type, '']
  }
}

/** @param {string} type */
function category (type) {
  if (type.startsWith('login.') || type.startsWith('session.')) return 'session'
  if (type.startsWith('csrf.') || type.startsWith('request.')) return 'session'
  return 'cookie'
}

/** @param {SessionEvent} e */
function tone (e) {
  if (e.type === 'cookie.rejected' || e.type === 'login.failed' || e.type === 'session.loggedOut') return 'bad'
  if (e.type === 'login.succeeded' || e.type === 'session.rotated') return 'good'
  if (e.type.startsWith('login.') || e.type.startsWith('csrf.') || e.type === 'request.replayed') return 'info'
  return 'plain'
}

/**
 * The request that caused an event, as a link to its exchange.
 * @param {SessionEvent} e
 */
function requestLink (e) {
  if (e.requestId === null || e.requestId === undefined) return el('span', { class: 'req' })
  const id = e.requestId
  return el('a', {
    class: 'req',
    href: '#',
    'data-request-id': id,
    title: 'open the exchange that caused it (_requestId in the HAR)',
    onclick: (/** @type {Event} */ ev) => { ev.preventDefault(); openExchange(id).catch(showError) }
  }, `request #${id}`)
}

/** @param {SessionEvent} e */
function renderEvent (e) {
  const [title, detail] = describe(e)
  const li = el('li', { class: `event ${tone(e)} cat-${category(e.type)}`, 'data-type': e.type, 'data-seq': e.seq },
    el('time', { datetime: e.time, title: e.time }, clock(e.time)),
    el('span', { class: 'type' }, e.type),
    el('span', { class: 'title' }, title,
      e.type === 'session.rotated' && e.fixation ? el('span', { class: 'badge' }, 'fixation protection') : null),
    el('span', { class: 'detail' }, detail),
    typeof e.url === 'string' ? el('span', { class: 'url mono', title: e.url }, e.url) : null,
    requestLink(e))
  li.hidden = state.filter !== '' && category(e.type) !== state.filter
  return li
}

/** @param {SessionEvent[]} events */
function addEvents (events) {
  if (events.length === 0) return
  const list = $('timeline')
  for (const e of events) {
    if (e.seq <= state.lastSeq) continue
    state.lastSeq = e.seq
    list.prepend(renderEvent(e))
    scheduleRefresh()
  }
  while (list.children.length > 500) list.lastElementChild?.remove()
  $('timeline-empty').hidden = list.children.length > 0
}

async function startTimeline () {
  state.source?.close()
  state.source = null
  clearInterval(state.pollTimer)
  state.lastSeq = 0
  $('timeline').replaceChildren()
  const name = current()
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

/**
 * @param {string} title
 * @param {Array<{ name: string, value: string, applies: boolean, rule: string, match: string, note?: string }>} rules
 */
function ruleList (title, rules) {
  if (rules.length === 0) return el('p', { class: 'muted' }, `${title}: none apply.`)
  return el('div', {}, el('h3', {}, title), el('ul', { class: 'rules' }, rules.map((r) => el('li', { class: r.applies ? '' : 'muted' },
    el('span', { class: 'mono strong' }, r.name), ': ', el('span', { class: 'mono' }, r.value),
    el('span', { class: 'muted' }, ` (${r.rule}, match ${r.match}${r.note ? ', ' + r.note : ''})`)))))
}

/** @param {SubmitEvent} ev */
async function runExplain (ev) {
  ev.preventDefault()
  const q = new URLSearchParams({ url: field('explain-url').value, method: field('explain-method').value, site: field('explain-site').value })
  const out = $('explain-result')
  try {
    /** @type {{ cookieHeader: string, cookies: Array<{ name: string, domain: string, path: string, sent: boolean, reasons: Array<{ code: string, message: string }> }>, headers: any[], auth: any[], csrf: any[] }} */
    const r = await api(`${profilePath()}/explain?${q}`)
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
    out.replaceChildren(el('p', { class: 'error' }, /** @type {Error} */ (err).message))
  }
}

// Wiring -------------------------------------------------------------------

/** @param {unknown} err */
function showError (err) {
  setStatus(err instanceof Error ? err.message : String(err), 'bad')
}

/**
 * A plain link cannot send the token: with one, download through fetch.
 * @param {MouseEvent} ev
 */
function downloadWithToken (ev) {
  if (!sessionStorage.getItem(TOKEN_KEY)) return
  ev.preventDefault()
  const a = /** @type {HTMLAnchorElement} */ (ev.currentTarget)
  fetch(a.href, { headers: adminHeaders() }).then(async (r) => {
    if (!r.ok) throw new Error(`download ${a.download}: ${r.status}`)
    const url = URL.createObjectURL(await r.blob())
    const link = /** @type {HTMLAnchorElement} */ (el('a', { href: url, download: a.download }))
    link.click()
    setTimeout(() => URL.revokeObjectURL(url), 10_000)
  }).catch(showError)
}

async function main () {
  $('explain-form').addEventListener('submit', (ev) => { runExplain(/** @type {SubmitEvent} */ (ev)).catch(showError) })
  $('profile-form').addEventListener('submit', (ev) => { createProfile(/** @type {SubmitEvent} */ (ev)).catch(showError) })
  $('cookie-form').addEventListener('submit', (ev) => { saveCookie(/** @type {SubmitEvent} */ (ev)).catch(showError) })
  $('cookie-cancel').addEventListener('click', hideCookieForm)
  $('add-cookie').addEventListener('click', () => showCookieForm(null))
  $('delete-profile').addEventListener('click', () => { deleteProfile().catch(showError) })
  for (const a of document.querySelectorAll('a.download')) a.addEventListener('click', (ev) => downloadWithToken(/** @type {MouseEvent} */ (ev)))
  $('ca-link').addEventListener('click', (ev) => downloadWithToken(/** @type {MouseEvent} */ (ev)))
  $('cookies-import').addEventListener('click', () => field('cookies-file').click())
  $('session-import').addEventListener('click', () => field('session-file').click())
  field('cookies-file').addEventListener('change', () => { importFile(field('cookies-file'), 'cookies.txt', 'text/plain').catch(showError) })
  field('session-file').addEventListener('change', () => { importFile(field('session-file'), 'session.json', 'application/json').catch(showError) })
  $('timeline-filter').addEventListener('change', (ev) => {
    state.filter = /** @type {HTMLSelectElement} */ (ev.target).value
    for (const li of $('timeline').children) {
      if (li instanceof HTMLElement) li.hidden = state.filter !== '' && !li.classList.contains('cat-' + state.filter)
    }
  })
  $('clear-jar').addEventListener('click', async () => {
    if (!confirm(`Delete every cookie of profile ${current()}?`)) return
    await api(`${profilePath()}/cookies`, { method: 'DELETE' }).catch(showError)
    scheduleRefresh()
  })
  field('capture-toggle').addEventListener('change', async (ev) => {
    await api(`${profilePath()}/capture`, {
      method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ enabled: /** @type {HTMLInputElement} */ (ev.target).checked })
    }).catch(showError)
    await Promise.all([loadCapture(), loadExchanges()]).catch(showError)
  })
  const health = await api('/health')
  $('version').textContent = 'v' + health.version
  await loadProfiles()
  if (state.profile === null) setStatus('no profiles yet', 'warn')
  setInterval(() => {
    loadProfiles().catch(() => {})
    if (state.profile !== null) { loadCapture().catch(() => {}); loadExchanges().catch(() => {}) }
  }, 5000)
}

main().catch(showError)
