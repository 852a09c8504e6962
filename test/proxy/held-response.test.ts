/**
 * A held response that is dropped (the logged-out answer before a replay) is
 * discarded within its own bounds: beyond maxBytes or timeoutMs the upstream
 * request is aborted instead of read to its end. Driven through the undici
 * handler callbacks the real dispatcher calls.
 */
import t from 'tap'
import { HeldResponse } from '../../src/proxy/held-response.js'

function held (): { h: HeldResponse, aborted: () => number, resumed: () => number } {
  const h = new HeldResponse('1.1 test')
  let aborts = 0
  let resumes = 0
  h.onConnect(() => { aborts++ })
  h.onHeaders(200, [Buffer.from('content-type'), Buffer.from('text/html')], () => { resumes++ }, 'OK')
  return { h, aborted: () => aborts, resumed: () => resumes }
}

t.test('a discarded body beyond maxBytes aborts the upstream', async (t) => {
  const { h, aborted, resumed } = held()
  h.discard(100, 60_000)
  t.equal(resumed(), 1, 'reading resumes')
  t.equal(h.onData(Buffer.alloc(60)), true, 'within the bound the body is read and dropped')
  t.equal(aborted(), 0)
  t.equal(h.onData(Buffer.alloc(60)), false)
  t.equal(aborted(), 1, 'past maxBytes the request is aborted')
})

t.test('a body already held beyond maxBytes is aborted at once', async (t) => {
  const { h, aborted } = held()
  h.onData(Buffer.alloc(300))
  h.discard(100, 60_000)
  t.equal(aborted(), 1)
})

t.test('a discarded body that does not end within timeoutMs aborts the upstream', async (t) => {
  const { h, aborted } = held()
  h.discard(1 << 20, 50)
  h.onData(Buffer.alloc(10))
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.equal(aborted(), 1)
})

t.test('a discarded body that ends in time is not aborted', async (t) => {
  const { h, aborted } = held()
  h.discard(1 << 20, 100)
  h.onData(Buffer.alloc(10))
  h.onComplete()
  await new Promise((resolve) => setTimeout(resolve, 250))
  t.equal(aborted(), 0)
})
