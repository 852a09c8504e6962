// Build step: compiles the config schema into a standalone validator
// (dist/config/config-validator.cjs), so start-up does not spend a fifth of
// its time in ajv's code generation. src/config/load.ts falls back to
// compiling at run time when the file is absent.
import { writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'

const require = createRequire(import.meta.url)
const { Ajv } = require('ajv')
const standaloneCode = require('ajv/dist/standalone').default
const { configSchema } = await import('../dist/config/schema.js')

const ajv = new Ajv({ allErrors: true, strict: false, code: { source: true } })
const validate = ajv.compile(configSchema)
writeFileSync(new URL('../dist/config/config-validator.cjs', import.meta.url), standaloneCode(ajv, validate))
