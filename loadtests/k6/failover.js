// Failover: steady mixed traffic meant to run while instances are stopped and started again
// (`loadtests/run-local.sh --chaos failover` restarts them one at a time with SIGTERM; or restart
// them by hand, or kill them, while it runs). Not one request may fail: a draining instance keeps
// serving, and nginx moves refused connections to the others.
//
//   BASE_URL  default http://127.0.0.1:8080
//   RATE      iterations (~requests) per second, default 100
//   DURATION  default 60s
//   USERS, SEED_TASKS
//
// Thresholds: no failed request, every status as expected, p95 < 1 s, p99 < 3 s.

import { useScript, baseOptions, perRoute, summaryHandler, setupUsers, mixedIteration, int } from './lib/setup.js';

useScript('failover');

const RATE = int('RATE', 100);

export const options = baseOptions({
    scenarios: {
        failover: {
            executor: 'constant-arrival-rate',
            rate: RATE,
            timeUnit: '1s',
            duration: __ENV.DURATION || '60s',
            preAllocatedVUs: Math.max(10, RATE),
            maxVUs: Math.max(50, RATE * 4),
            gracefulStop: '30s',
        },
    },
    thresholds: Object.assign(
        {
            http_req_failed: ['rate==0'],
            checks: ['rate==1'],
            http_req_duration: ['p(95)<1000', 'p(99)<3000'],
        },
        perRoute(),
    ),
});

export function setup() {
    return setupUsers(int('USERS', 5), int('SEED_TASKS', 5));
}

export default function (data) {
    mixedIteration(data);
}

export const handleSummary = summaryHandler('failover');
