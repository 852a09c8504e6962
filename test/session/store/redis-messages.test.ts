/**
 * parseChangeMessage: what a subscriber accepts from the changes channel.
 * Anything that is not exactly what a proxy publishes is null, never a throw.
 */
import t from 'tap'
import { parseChangeMessage } from '../../../src/session/store/redis-store.js'

t.test('garbage and wrong shapes are null', async (t) => {
  const bad = ['', 'garbage', '|', 'null', '1|null', '1|42', '1|"s"', '1|[]', 'x|{}', '0|{"r":"a","p":"p","c":0,"s":{},"d":[]}',
    '-1|{"r":"a","p":"p","c":0,"s":{},"d":[]}', '1.5|{"r":"a","p":"p","c":0,"s":{},"d":[]}', '1e400|{"r":"a","p":"p","c":0,"s":{},"d":[]}',
    '9007199254740993|{"r":"a","p":"p","c":0,"s":{},"d":[]}',
    '1|{"p":"p","c":0,"s":{},"d":[]}', '1|{"r":"a","p":"../x","c":0,"s":{},"d":[]}', '1|{"r":"a","p":"","c":0,"s":{},"d":[]}',
    '1|{"r":"a","p":"p","c":2,"s":{},"d":[]}', '1|{"r":"a","p":"p","c":0,"s":null,"d":[]}', '1|{"r":"a","p":"p","c":0,"s":[],"d":[]}',
    '1|{"r":"a","p":"p","c":0,"s":{"f":5},"d":[]}', '1|{"r":"a","p":"p","c":0,"s":{},"d":[1]}', '1|{"r":"a","p":"p","c":0,"s":{},"d":"x"}',
    '{"reload":5}', '{"reload":"../x"}', '{"reload":""}', '1|' + '['.repeat(100_000)]
  for (const raw of bad) t.equal(parseChangeMessage(raw), null, raw.slice(0, 60))
})

t.test('what a proxy publishes is accepted', async (t) => {
  t.same(parseChangeMessage('{"reload":"alice"}'), { reload: 'alice' })
  const r = parseChangeMessage('7|{"r":"abc","p":"alice","c":1,"s":{"f":"j"},"d":["g"]}')
  t.same(r, { v: 7, m: { r: 'abc', p: 'alice', c: 1, s: { f: 'j' }, d: ['g'] } })
  const proto = parseChangeMessage('7|{"r":"abc","p":"alice","c":0,"s":{"__proto__":"j"},"d":[]}')
  t.ok(proto !== null && 'm' in proto && Object.getPrototypeOf(proto.m.s) === null, 'a "__proto__" field is a field, not a prototype')
})
