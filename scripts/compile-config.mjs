// Build step for start-up time: compiles the config schema into a standalone
// validator (dist/config/config-validator.cjs) instead of running ajv's code
// generation at every start, and turns config/default.yaml into JSON
// (dist/config/default-config.json) so the YAML parser loads only for a
// user's YAML file. src/config/load.ts falls back to both when absent.
import { readFileSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const { Ajv } = require('ajv')
const standaloneCode = require('ajv/dist/standalone').default
const { configSchema } = await import('../dist/config/schema.js')

const ajv = new Ajv({ allErrors: true, strict: false, code: { source: true } })
const validate = ajv.compile(configSchema)
writeFileSync(new URL('../dist/config/config-validator.cjs', import.meta.url), standaloneCode(ajv, validate))

const { parse } = require('yaml')
const defaults = parse(readFileSync(new URL('../config/default.yaml', import.meta.url), 'utf8'))
if (!validate(defaults)) throw new Error(`config/default.yaml is invalid: ${JSON.stringify(validate.errors)}`)
writeFileSync(new URL('../dist/config/default-config.json', import.meta.url), JSON.stringify(defaults))
