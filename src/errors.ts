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
