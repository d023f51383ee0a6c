// Load: the expected production mix at a realistic rate, ramped up, held, ramped down.
// ~70% reads (list tasks 25%, get task 20%, GET /users/me 15%, list projects 10%), ~20% writes
// (create task 10% with an Idempotency-Key, update own task with If-Match 10%), ~10% auth (login,
// refresh of the VU's own session). One request per iteration (a list sometimes follows its cursor).
//
//   BASE_URL  default http://127.0.0.1:8080
//   RATE      iterations (~requests) per second at the plateau, default 100
//   RAMP      ramp-up time, default 30s (ramp-down is 10s)
//   DURATION  time at the plateau, default 3m
//   USERS, SEED_TASKS  the user pool made in setup (default 10 users, 10 tasks each)
//
// Thresholds: < 0.1% failed, p95 < 300 ms, p99 < 1 s, every status as expected (checks > 99.9%).

import { useScript, baseOptions, perRoute, summaryHandler, setupUsers, mixedIteration, int } from './lib/setup.js';

useScript('load');

const RATE = int('RATE', 100);

export const options = baseOptions({
    scenarios: {
        load: {
            executor: 'ramping-arrival-rate',
            startRate: Math.max(1, Math.round(RATE / 10)),
            timeUnit: '1s',
            preAllocatedVUs: Math.max(10, Math.round(RATE / 2)),
            maxVUs: Math.max(50, RATE * 3),
            stages: [
                { duration: __ENV.RAMP || '30s', target: RATE },
                { duration: __ENV.DURATION || '3m', target: RATE },
                { duration: '10s', target: 0 },
            ],
            gracefulStop: '30s',
        },
    },
    thresholds: Object.assign(
        {
            http_req_failed: ['rate<0.001'],
            http_req_duration: ['p(95)<300', 'p(99)<1000'],
            checks: ['rate>0.999'],
        },
        perRoute(),
    ),
});

export function setup() {
    return setupUsers();
}

export default function (data) {
    mixedIteration(data);
}

export const handleSummary = summaryHandler('load');
