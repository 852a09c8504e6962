/**
 * Typed errors: every failure the proxy reports carries a stable code and the
 * HTTP status it maps to, so logs, admin responses and tests can match on the
 * code instead of on message text.
 */
export class SessionProxyError extends Error {
  readonly code: string
  readonly statusCode: number

  constructor (code: string, statusCode: number, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'SessionProxyError'
    this.code = code
    this.statusCode = statusCode
  }
}

export class ConfigError extends SessionProxyError {
  constructor (message: string, options?: { cause?: unknown }) {
    super('SP_CONFIG_INVALID', 500, message, options)
    this.name = 'ConfigError'
  }
}

export class BadProfileError extends SessionProxyError {
  constructor (message: string) {
    super('SP_PROFILE_INVALID', 400, message)
    this.name = 'BadProfileError'
  }
}

export class BadRequestError extends SessionProxyError {
  constructor (code: string, message: string) {
    super(code, 400, message)
    this.name = 'BadRequestError'
  }
}

export class ProxyAuthRequiredError extends SessionProxyError {
  constructor (message: string) {
    super('SP_PROXY_AUTH_REQUIRED', 407, message)
    this.name = 'ProxyAuthRequiredError'
  }
}

export class LoopDetectedError extends SessionProxyError {
  constructor (message: string) {
    super('SP_LOOP_DETECTED', 508, message)
    this.name = 'LoopDetectedError'
  }
}

/** Upstream failures: the code names what failed, the status is 502 or 504. */
export class UpstreamError extends SessionProxyError {
  readonly host: string
  constructor (code: string, statusCode: 502 | 504, host: string, message: string, options?: { cause?: unknown }) {
    super(code, statusCode, message, options)
    this.name = 'UpstreamError'
    this.host = host
  }
}

export class CookiesTxtError extends SessionProxyError {
  constructor (message: string) {
    super('SP_COOKIES_TXT_INVALID', 400, message)
    this.name = 'CookiesTxtError'
  }
}

export interface ErrorCatalogueEntry {
  /** The HTTP status the code is answered with (0: never sent to a client, e.g. a start-up failure). */
  status: number
  meaning: string
}

/**
 * Every SP_* code the proxy can produce, with its status and what it means.
 * docs/errors.md says the same for readers; test/errors.test.ts keeps both
 * in step with the code literals in src/.
 */
export const ERROR_CATALOGUE: Readonly<Record<string, ErrorCatalogueEntry>> = {
  // Requests the proxy refuses
  SP_BAD_REQUEST: { status: 400, meaning: 'The request is malformed (admin API: invalid body or parameters).' },
  SP_BAD_TARGET: { status: 400, meaning: 'The request target is not an absolute http(s) URL, has an invalid host or port, or names another origin inside a tunnel.' },
  SP_BAD_QUERY: { status: 400, meaning: 'An admin query parameter is out of range.' },
  SP_CONNECT_TARGET: { status: 400, meaning: 'The CONNECT target is not host:port.' },
  SP_CONNECT_PORT: { status: 403, meaning: 'CONNECT to a port outside connect.allowedPorts.' },
  SP_PROFILE_INVALID: { status: 400, meaning: 'The profile name (Proxy-Authorization user or X-Session-Profile) is not a valid profile name.' },
  SP_PROXY_AUTH_SCHEME: { status: 400, meaning: 'Proxy-Authorization uses a scheme other than Basic.' },
  SP_PROXY_AUTH_REQUIRED: { status: 407, meaning: 'proxyAuth is configured and the request carries no valid credentials.' },
  SP_CLIENT_NOT_ALLOWED: { status: 403, meaning: 'The client address is not in allowClients; the connection is closed after this answer.' },
  SP_REVERSE_ONLY: { status: 403, meaning: 'Reverse mode: absolute-form requests to other hosts and CONNECT are refused unless reverseForward is true.' },
  SP_LOOP_DETECTED: { status: 508, meaning: 'The request already passed through this proxy (its Via header names it).' },
  SP_UPGRADE_UNSUPPORTED: { status: 501, meaning: 'A protocol upgrade other than WebSocket, or an upgrade on an admin path.' },
  SP_H2C_UNSUPPORTED: { status: 501, meaning: 'Cleartext HTTP/2 (h2c) is not supported: an `Upgrade: h2c` request, or an HTTP/2 prior-knowledge preface on a plain port. HTTP/2 is offered by ALPN inside intercepted TLS tunnels.' },
  SP_HEADERS_TOO_LARGE: { status: 431, meaning: 'The request head is larger than limits.maxHeaderBytes.' },
  SP_CLIENT_TIMEOUT: { status: 408, meaning: 'The client did not finish its request head within limits.clientHeadersTimeoutMs, or its body sent nothing for limits.clientBodyIdleTimeoutMs.' },
  SP_CLIENT_PARSE: { status: 400, meaning: 'The client sent bytes that are not valid HTTP/1.1 (smuggling shapes, bad framing, invalid characters).' },
  SP_OVERLOADED: { status: 503, meaning: 'limits.maxClientConnections connections are open and none is idle: the new connection is answered and closed.' },
  SP_SHUTTING_DOWN: { status: 503, meaning: 'The proxy is shutting down and takes no new tunnels or upgrades.' },
  SP_CLIENT_CLOSED: { status: 0, meaning: 'Metrics only: the client went away before a response status was sent.' },
  SP_INTERNAL: { status: 500, meaning: 'A bug: an unexpected error inside the proxy. Please report it.' },
  SP_CONFIG_INVALID: { status: 500, meaning: 'The configuration is invalid (reported at start-up, exit status 2).' },
  SP_ADDON_ERROR: { status: 502, meaning: 'An addon hook threw or rejected; the message names the addon (its name or file) and the hook. The proxy keeps serving.' },
  SP_ADDON_LOAD: { status: 0, meaning: 'An addon module (addons, --addon) could not be loaded: missing file, syntax error, no default export, a factory that threw, or a hook that is not a function. The proxy refuses to start (exit status 2).' },
  // Upstream failures
  SP_UPSTREAM_DNS: { status: 502, meaning: 'The upstream host name could not be resolved.' },
  SP_UPSTREAM_REFUSED: { status: 502, meaning: 'The upstream refused the connection.' },
  SP_UPSTREAM_RESET: { status: 502, meaning: 'The upstream reset or closed the connection before the response was complete.' },
  SP_UPSTREAM_UNREACHABLE: { status: 502, meaning: 'The upstream host or network is unreachable.' },
  SP_UPSTREAM_CONNECT_TIMEOUT: { status: 504, meaning: 'Connecting to the upstream took longer than pool.connectTimeoutMs.' },
  SP_UPSTREAM_HEADERS_TIMEOUT: { status: 504, meaning: 'The upstream sent no response head within pool.headersTimeoutMs.' },
  SP_UPSTREAM_BODY_TIMEOUT: { status: 504, meaning: 'The upstream response body stalled for pool.bodyTimeoutMs.' },
  SP_UPSTREAM_BAD_RESPONSE: { status: 502, meaning: 'The upstream sent an invalid HTTP response (bad status line, framing, header characters, oversized headers).' },
  SP_UPSTREAM_TLS: { status: 502, meaning: 'The TLS handshake with the upstream failed or its certificate did not verify.' },
  SP_UPSTREAM_PROXY: { status: 502, meaning: 'The upstream proxy (--upstream-proxy) refused or failed the CONNECT.' },
  SP_UPSTREAM_PROXY_UNREACHABLE: { status: 502, meaning: 'The upstream proxy (--upstream-proxy) could not be reached (refused, DNS, unreachable, connect timeout); the message names its host:port.' },
  SP_REQUEST_NOT_FORWARDABLE: { status: 400, meaning: 'The request as built cannot be sent upstream (for example a configured default header value undici refuses).' },
  SP_UPSTREAM_ERROR: { status: 502, meaning: 'Any other upstream failure; the message says what happened.' },
  // Autopilot
  SP_AUTOPILOT_LOOP: { status: 502, meaning: 'The autopilot gave up after repeated login and CSRF retries for one request.' },
  SP_LOGIN_FAILED: { status: 502, meaning: 'A configured login flow failed at one of its steps.' },
  SP_LOGIN_NO_BASE_URL: { status: 400, meaning: 'A wildcard login rule needs an explicit host (or baseUrl) to run.' },
  SP_NO_LOGIN: { status: 404, meaning: 'The profile has no login flow for this host.' },
  SP_LOGIN_STEP_TIMEOUT: { status: 502, meaning: 'A login step did not finish within limits.loginStepTimeoutMs; the message names the step.' },
  SP_LOGIN_STEP_TOO_LARGE: { status: 502, meaning: 'A login step answered with a body over limits.loginMaxBodyBytes; the message names the step.' },
  SP_CSRF_REFRESH_FAILED: { status: 502, meaning: 'Fetching a CSRF token failed or broke the login limits (time, bytes).' },
  SP_SECRET_UNAVAILABLE: { status: 502, meaning: 'A secret (a login password, a hosts[].auth password or token) could not be read when a request needed it; the message names its config key, never the value.' },
  SP_CREDENTIALS_MISSING: { status: 502, meaning: 'The profile matched a block with a credentials file, but the file has no row for it; the message names the profile and the file.' },
  SP_CLIENT_GONE: { status: 0, meaning: 'Internal: the client went away while its request waited (a login, the pool); nothing is sent or replayed.' },
  // Admin API
  SP_ADMIN_AUTH_REQUIRED: { status: 401, meaning: 'The admin API needs the bearer token (admin.token), and it is missing or wrong.' },
  SP_ADMIN_HOST: { status: 421, meaning: 'The Host header is not one of the proxy\'s own names (listen address, localhost, admin.hosts): refused against DNS rebinding.' },
  SP_ADMIN_ORIGIN: { status: 403, meaning: 'A state-changing admin call from a web page of another origin.' },
  SP_ADMIN_HEADER_REQUIRED: { status: 403, meaning: 'An admin POST without x-session-proxy-admin or the bearer token (a browser could send it cross-site without a preflight).' },
  SP_ADMIN_TOKEN_UNSET: { status: 403, meaning: 'The proxy listens beyond loopback and admin.token is not configured, so the admin API refuses.' },
  SP_ADMIN_NOT_FOUND: { status: 404, meaning: 'No such admin route or page asset.' },
  SP_ADMIN_BAD_JSON: { status: 400, meaning: 'The admin request body is not valid JSON (or is empty, or has a __proto__ key).' },
  SP_ADMIN_BODY_TOO_LARGE: { status: 413, meaning: 'The admin request body is larger than limits.maxAdminBodyBytes.' },
  SP_ADMIN_MEDIA_TYPE: { status: 415, meaning: 'The admin request body has an unsupported content type.' },
  SP_BAD_URL: { status: 400, meaning: 'The admin request path has invalid percent-encoding.' },
  SP_PROFILE_UNAVAILABLE: { status: 503, meaning: 'The profile\'s cookie jar file exists but cannot be read (EIO, EISDIR, EACCES); its requests are refused until it can, health names the file.' },
  SP_PROFILE_NOT_FOUND: { status: 404, meaning: 'No profile with that name.' },
  SP_COOKIE_NOT_FOUND: { status: 404, meaning: 'No cookie matches the given name, domain and path.' },
  SP_COOKIES_TXT_INVALID: { status: 400, meaning: 'An imported cookies.txt is invalid; nothing was changed.' },
  SP_PROFILE_EXISTS: { status: 409, meaning: 'POST /_session/profiles: a profile of that name exists already.' },
  SP_PROFILE_DECLARED: { status: 409, meaning: 'DELETE /_session/profiles/{p}: the profile is declared in the config; remove it there.' },
  SP_COOKIE_INVALID: { status: 400, meaning: 'A cookie written through the admin API (PUT .../cookies/{name}, PUT .../session.json) breaks the rules of the jar; nothing was changed.' },
  SP_PROFILE_PORT: { status: 403, meaning: 'A request on a profile port (profiles.<p>.listen) names another profile by Proxy-Authorization user or X-Session-Profile.' },
  SP_TUNNEL_PROFILE: { status: 403, meaning: 'A request inside a CONNECT tunnel opened as one profile (by the CONNECT, or on a profile port) names another profile by its own Proxy-Authorization user or X-Session-Profile.' },
  SP_CAPTURE_INVALID: { status: 400, meaning: 'Invalid traffic capture settings.' },
  SP_EXCHANGE_NOT_FOUND: { status: 404, meaning: 'No captured exchange with that request id in the profile (capture keeps the last capture.maxEntries).' },
  SP_EXPLAIN_BAD_URL: { status: 400, meaning: 'explain: the URL is missing or not an absolute http(s) URL.' },
  SP_EXPLAIN_BAD_METHOD: { status: 400, meaning: 'explain: the method is not an HTTP method.' },
  SP_EXPLAIN_BAD_SITE: { status: 400, meaning: 'explain: the site context is not one of the allowed values.' }
}
