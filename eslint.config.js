// Lint: neostandard (the style undici and fastify use), TypeScript included.
import neostandard from 'neostandard'
import globals from 'globals'

export default [
  ...neostandard({ ts: true, ignores: ['**/dist/**', '**/coverage/**', '**/.tap/**', '**/node_modules/**'] }),
  {
    rules: {
      // `void promise` marks a promise deliberately not awaited (fastify's style).
      'no-void': ['error', { allowAsStatement: true }],
      // Header and cookie validation matches control characters on purpose.
      'no-control-regex': 'off',
      // Loops that wait on a flag set by a callback or another task: the rule
      // cannot see those writes and flags every one.
      'no-unmodified-loop-condition': 'off'
    }
  },
  {
    files: ['**/public/**/*.js'],
    languageOptions: { globals: globals.browser }
  }
]
