/**
 * credentials.ts: the CSV reader (RFC 4180 quoting, BOM, CRLF), the
 * profile,username,password table and its errors (file and line, never a
 * value), and the re-read of a changed file.
 */
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { CredentialsFile, CredentialsMissingError, credentialsFile, parseCredentials, parseCsv } from '../../src/session/credentials.js'
import { ConfigError } from '../../src/errors.js'

const fields = (text: string): string[][] => parseCsv(text, 'x.csv').map((r) => r.fields)

t.test('parseCsv: RFC 4180 fields, CRLF or LF, a BOM, blank lines', async (t) => {
  t.same(fields('a,b,c\r\n1,2,3\r\n'), [['a', 'b', 'c'], ['1', '2', '3']])
  t.same(fields('\ufeffa,b\n1,2'), [['a', 'b'], ['1', '2']], 'BOM dropped, no final line end')
  t.same(fields('a,"b,c","d""e"\n'), [['a', 'b,c', 'd"e']], 'quoted comma and quote')
  t.same(fields('a,"multi\r\nline"\nnext,x\n'), [['a', 'multi\r\nline'], ['next', 'x']], 'a line break inside quotes')
  t.same(fields('a,,\n'), [['a', '', '']], 'empty fields')
  t.same(fields('a\n\n\r\nb\n'), [['a'], ['b']], 'blank lines skipped')
  t.same(fields('""\n'), [['']], 'an empty quoted field is a record')
  t.same(fields('a,b\rc,d'), [['a', 'b'], ['c', 'd']], 'a lone CR ends a record too')
  const lines = parseCsv('h\n"x\ny"\nz\n', 'x.csv').map((r) => r.line)
  t.same(lines, [1, 2, 4], 'records know the line they start on')
})

t.test('parseCsv: malformed quoting is a config error naming the file and line', async (t) => {
  t.throws(() => parseCsv('a\n"open\n', 'u.csv'), { name: 'ConfigError', message: /credentials file u\.csv, line 2: a quoted field is not closed/ })
  t.throws(() => parseCsv('a\n"x"y\n', 'u.csv'), { message: /line 2: a closing quote must end the field/ })
  t.throws(() => parseCsv('a\nx"y\n', 'u.csv'), { message: /line 2: a quote inside an unquoted field/ })
})

t.test('parseCredentials: the header, any column order, and refusals', async (t) => {
  const table = parseCredentials('profile,username,password\nvu-1,user1,pw1\nvu-2,user2,"p,w"\n', 'u.csv')
  t.same([...table], [['vu-1', { username: 'user1', password: 'pw1' }], ['vu-2', { username: 'user2', password: 'p,w' }]])
  const reordered = parseCredentials('Password, Username ,PROFILE,note\nsecret,bob,b,hello\n', 'u.csv')
  t.same(reordered.get('b'), { username: 'bob', password: 'secret' }, 'columns found by name, extra ones ignored')
  t.throws(() => parseCredentials('vu-1,user1,pw1\n', 'users.csv'), { message: /credentials file users\.csv, line 1: the first row must be the header "profile,username,password"/ })
  t.throws(() => parseCredentials('', 'users.csv'), { message: /users\.csv, line 1: the first row must be the header/ })
  t.throws(() => parseCredentials('profile,username,password\nvu-1,user1\n', 'u.csv'), { message: /line 2: 2 fields, the header has 3/ })
  t.throws(() => parseCredentials('profile,username,password\n,u,p\n', 'u.csv'), { message: /line 2: the profile is empty/ })
  t.throws(() => parseCredentials('profile,username,password\na,u,p\na,v,q\n', 'u.csv'), { message: /line 3: a second row for profile "a"/ })
  try {
    parseCredentials('profile,username,password\nvu-1,user1\n', 'u.csv')
  } catch (err) {
    t.notMatch((err as Error).message, /user1/, 'a value never appears in an error')
  }
})

t.test('CredentialsFile: read at start, re-read when it changes, a broken change keeps the old rows and fails lookups', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sp-creds-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, 'users.csv')
  writeFileSync(path, 'profile,username,password\nvu-1,user1,pw1\n')
  const f = new CredentialsFile(path)
  t.equal(f.size, 1)
  t.ok(f.has('vu-1'))
  t.same(f.lookup('vu-1'), { username: 'user1', password: 'pw1' })
  t.throws(() => f.lookup('vu-2'), CredentialsMissingError)
  t.throws(() => f.lookup('vu-2'), { code: 'SP_CREDENTIALS_MISSING', statusCode: 502, message: `profile "vu-2" has no row in the credentials file ${path}: add a line "vu-2,USERNAME,PASSWORD"` })

  writeFileSync(path, 'profile,username,password\nvu-1,user1,pw1\nvu-2,user2,pw2\n')
  utimesSync(path, new Date(), new Date(Date.now() + 5000))
  t.same(f.lookup('vu-2'), { username: 'user2', password: 'pw2' }, 'a changed file is read again at the next lookup')

  writeFileSync(path, 'no header\n')
  utimesSync(path, new Date(), new Date(Date.now() + 10000))
  t.throws(() => f.lookup('vu-1'), { name: 'ConfigError', message: /line 1: the first row must be the header/ })
  t.ok(f.lastError instanceof ConfigError, 'the failure is kept')
  t.ok(f.has('vu-1'), 'the last good rows stay')
  t.throws(() => f.lookup('vu-1'), ConfigError, 'and every lookup tries again while it is broken')

  rmSync(path)
  t.throws(() => f.lookup('vu-1'), { message: /cannot read credentials file .*users\.csv/ }, 'a file that went away fails lookups')
  writeFileSync(path, 'profile,username,password\nvu-1,user1,new\n')
  t.same(f.lookup('vu-1'), { username: 'user1', password: 'new' }, 'and is read again once it is back')
  t.equal(f.lastError, null)

  mkdirSync(join(dir, 'a-dir'))
  t.throws(() => new CredentialsFile(join(dir, 'a-dir')), { message: /not a regular file/ })
})

t.test('credentialsFile: one table per path; an unusable file is a config error naming the key', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sp-creds-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, 'users.csv')
  writeFileSync(path, 'profile,username,password\nvu-1,u,p\n')
  t.equal(credentialsFile({ file: path }, 'profiles.a.credentials'), credentialsFile({ file: path }, 'profiles.b.credentials'), 'shared')
  t.throws(() => credentialsFile({ file: join(dir, 'missing.csv') }, 'profiles.vu-*.credentials'), { name: 'ConfigError', message: /^profiles\.vu-\*\.credentials: cannot read credentials file .*missing\.csv/ })
})
