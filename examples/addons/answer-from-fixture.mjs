// Answers GET /fixture/status on any host from fixtures/status.json, without
// contacting the upstream: handy for a health check or a stubbed endpoint.

import { readFile } from 'node:fs/promises'

const FIXTURE = new URL('./fixtures/status.json', import.meta.url)

/** @type {import('session-proxy/addon').Addon} */
export default {
  name: 'answer-from-fixture',
  async request (flow) {
    if (flow.request.method !== 'GET' || new URL(flow.request.url).pathname !== '/fixture/status') return
    flow.respond({
      status: 200,
      headers: { 'content-type': 'application/json', 'x-answered-by': 'fixture' },
      body: await readFile(FIXTURE)
    })
  }
}
