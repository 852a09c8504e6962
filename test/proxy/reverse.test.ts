/** Reverse mode (src/proxy/reverse.ts): the base URL and the Location rewrite. */
import t from 'tap'
import { parseReverseBase, rewriteLocation } from '../../src/proxy/reverse.js'

t.test('reverse mode Location rewriting', async (t) => {
  const root = parseReverseBase('https://api.example.com')
  const proxy = 'http://sidecar:8080'
  t.equal(rewriteLocation(root, 'https://api.example.com/login?next=/a', proxy), 'http://sidecar:8080/login?next=/a')
  t.equal(rewriteLocation(root, 'https://API.example.com:443/x#f', proxy), 'http://sidecar:8080/x#f', 'default port and case do not matter')
  t.equal(rewriteLocation(root, '/relative', proxy), '/relative')
  t.equal(rewriteLocation(root, '//api.example.com/p', proxy), 'http://sidecar:8080/p', 'scheme-relative')
  t.equal(rewriteLocation(root, 'http://api.example.com/p', proxy), 'http://api.example.com/p', 'another scheme is another origin')
  t.equal(rewriteLocation(root, 'https://sso.example.com/', proxy), 'https://sso.example.com/')
  const based = parseReverseBase('https://api.example.com/v1/')
  t.equal(based.basePath, '/v1')
  t.equal(rewriteLocation(based, 'https://api.example.com/v1/items', proxy), 'http://sidecar:8080/items')
  t.equal(rewriteLocation(based, '/v1/items', proxy), '/items')
  t.equal(rewriteLocation(based, '/v1', proxy), '/')
  t.equal(rewriteLocation(based, 'https://api.example.com/other', proxy), 'https://api.example.com/other', 'outside the base path: left alone')
  t.throws(() => parseReverseBase('ftp://x'), /http/)
  t.throws(() => parseReverseBase('https://x/?q=1'), /query/)
})
