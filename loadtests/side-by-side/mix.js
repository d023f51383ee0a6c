// The side-by-side test's load: loadtests/k6/load.js (the production mix, ramped arrival rate,
// same knobs: RATE, RAMP, DURATION, USERS, SEED_TASKS), with stricter thresholds: no failed
// request at all (http_req_failed rate 0) and every status as expected (checks rate 1), while
// two releases share the database and the old one is restarted and then stopped; each request on
// a new connection to nginx (below). The count of acknowledged task creations (op create_task) is
// kept as a sub-metric so run.sh can compare it with the rows in PostgreSQL.
// Summary: SUMMARY_DIR/side-by-side-summary.json.

import { options as loadOptions } from '../k6/load.js';
import { useScript, summaryHandler, setupUsers, mixedIteration, perTag } from '../k6/lib/setup.js';

// Request ids k6-side-by-side-<vu>-<iteration>-<n> (load.js named them `load`; this runs after).
useScript('side-by-side');

// A connection per request, as the writer does: run.sh reloads nginx four times to take instances
// out and put them back, and a reload closes the idle keep-alive connections clients hold to nginx.
// A request written on one at that instant gets no answer (k6, a Go client, does not resend a
// POST, where a browser would), a loss of the client's connection, not of the service's; with
// keep-alive one login in 4,018 requests was lost so in CI (nginx never logged it).
export const options = Object.assign({}, loadOptions, {
    noConnectionReuse: true,
    thresholds: Object.assign({}, loadOptions.thresholds, {
        http_req_failed: ['rate==0'],
        checks: ['rate==1'],
    }, perTag('op', ['create_task', 'update_task', 'create_comment', 'login', 'refresh'])),
});

export function setup() {
    return setupUsers();
}

export default function (data) {
    mixedIteration(data);
}

export const handleSummary = summaryHandler('side-by-side');
