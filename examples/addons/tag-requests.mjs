// Tags every request with the profile and the way it came in, so the upstream
// (or its logs) can tell sessions apart: x-addon-tag: alice/https.
// Load it with `session-proxy --addon examples/addons/tag-requests.mjs`.

/** @type {import('session-proxy/addon').AddonFactory} */
export default function tagRequests ({ log }) {
  log.info('tagging requests with x-addon-tag')
  return {
    name: 'tag-requests',
    request (flow) {
      flow.request.headers.set('x-addon-tag', `${flow.profile}/${flow.kind}`)
    }
  }
}
