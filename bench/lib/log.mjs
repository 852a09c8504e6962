import { performance } from 'node:perf_hooks'

const T0 = performance.now()
export const log = (...a) => console.error(`[bench +${((performance.now() - T0) / 1000).toFixed(1)}s]`, ...a)
