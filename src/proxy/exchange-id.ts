/**
 * One request-id counter for every entry (HTTP, intercepted, WebSocket, the autopilot),
 * so events, the page and the HAR never see two exchanges with the same id.
 */
import { performance } from 'node:perf_hooks'

let nextExchangeId = 1

export function allocateExchangeId (): number {
  return nextExchangeId++
}

export function msSince (started: number): number {
  return Math.round((performance.now() - started) * 100) / 100
}
