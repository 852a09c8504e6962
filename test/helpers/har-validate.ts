/**
 * HAR 1.2 validation for tests: the har-schema JSON Schemas (the ones
 * har-validator uses) compiled with ajv, plus the spec rules a schema cannot
 * say (entry time = sum of the non-negative timings, ISO dates).
 */
import { createRequire } from 'node:module'
import { Ajv, type AnySchemaObject } from 'ajv'

const require = createRequire(import.meta.url)
const schemas = require('har-schema') as Record<string, AnySchemaObject>
const draft06 = require('ajv/dist/refs/json-schema-draft-06.json') as AnySchemaObject

const ajv = new Ajv({ allErrors: true, strict: false, validateFormats: false })
ajv.addMetaSchema(draft06)
for (const s of Object.values(schemas)) ajv.addSchema(s)
const validateHar = ajv.getSchema('har.json#')!

export function harErrors (har: unknown): string[] {
  const errors: string[] = []
  if (!validateHar(har)) errors.push(...(validateHar.errors ?? []).map((e) => `${e.instancePath} ${e.message ?? ''}`))
  const entries = (har as { log?: { entries?: Array<Record<string, unknown>> } }).log?.entries ?? []
  entries.forEach((e, i) => {
    const t = e.timings as Record<string, number>
    const sum = ['blocked', 'dns', 'connect', 'send', 'wait', 'receive'].reduce((a, k) => a + Math.max(0, t[k] ?? 0), 0)
    if (Math.abs(sum - (e.time as number)) > 0.01) errors.push(`entries[${i}].time ${String(e.time)} is not the sum of its timings ${sum}`)
    if (Number.isNaN(Date.parse(e.startedDateTime as string))) errors.push(`entries[${i}].startedDateTime is not a date`)
  })
  return errors
}
