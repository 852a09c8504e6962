/**
 * Config shapes that features read (capture, events, metrics, credentials), kept at
 * the bottom so that config/schema.ts needs nothing from observe/ or session/.
 */

/** A secret given inline, by environment variable name, or by file path. */
export interface SecretRef {
  value?: string
  env?: string
  file?: string
}

/** The largest capture settings accepted, by the config schema and by POST /_session/capture alike. */
export const MAX_CAPTURE_ENTRIES = 100_000
export const MAX_CAPTURE_BODY_BYTES = 64 * 1024 * 1024

export interface CaptureSettings {
  enabled: boolean
  /** Exchanges kept; the oldest are dropped. */
  maxEntries: number
  /** Response body bytes kept per exchange; the rest is counted, not kept. */
  maxBodyBytes: number
  /** Replace cookie, set-cookie, authorization and proxy-authorization values. */
  redact: boolean
}

export interface EventsConfig {
  /** Events kept per profile; older ones are dropped. */
  maxPerProfile: number
  /** Events kept across all profiles; the oldest anywhere are dropped first. */
  maxTotal: number
  /** Also append events to <dataDir>/events/<profile>.jsonl and reload them at start. */
  persist: boolean
  /** Cookie names whose value change is reported as session.rotated. */
  sessionCookies: string[]
  /** A rotation this soon after login.succeeded counts as fixation protection. */
  fixationWindowMs: number
  /** Bytes of one profile's persisted file (default 4 MiB). */
  maxFileBytes?: number
  /** Bytes of all persisted files together (default 256 MiB). */
  maxTotalFileBytes?: number
}

export interface MetricsConfig {
  enabled: boolean
  /** Distinct profile label values before the rest are reported as `other`. */
  maxProfileLabels: number
}

export interface CredentialsConfig {
  /** Path of the CSV; relative paths are resolved against the working directory, like secret files. */
  file: string
}
