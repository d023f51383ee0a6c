// Soak: the load mix at a steady rate for a long time (default 30 minutes), to surface leaks, slow
// growth of latency, connection or token expiry problems (access tokens live 15 minutes; every VU
// renews its own after TOKEN_RENEW_S, default 600). Requests are tagged `window: early|middle|late`
// (first 20%, middle, last 20% of the run) so the summary compares the start with the end.
//
//   BASE_URL  default http://127.0.0.1:8080
//   RATE      iterations (~requests) per second, default 50
//   DURATION  default 30m
//   USERS, SEED_TASKS, TOKEN_RENEW_S
//
// Thresholds: < 0.1% failed, p95 < 300 ms, p99 < 1 s over the run, and the same p95/p99 in the
// last 20% (so a service that slowly degrades fails even if the average still looks good).

import { useScript, baseOptions, perTag, summaryHandler, setupUsers, mixedIteration, tagStage, durationMs, int } from './lib/setup.js';

useScript('soak');

const RATE = int('RATE', 50);
const DURATION = __ENV.DURATION || '30m';
const TOTAL_S = durationMs(DURATION) / 1000;
const WINDOWS = [
    { duration: `${TOTAL_S * 0.2}s` },
    { duration: `${TOTAL_S * 0.6}s` },
    { duration: `${TOTAL_S * 0.2}s` },
];

export const options = baseOptions({
    scenarios: {
        soak: {
            executor: 'constant-arrival-rate',
            rate: RATE,
            timeUnit: '1s',
            duration: DURATION,
            preAllocatedVUs: Math.max(10, RATE),
            maxVUs: Math.max(50, RATE * 4),
            gracefulStop: '30s',
        },
    },
    thresholds: Object.assign(
        perTag('window', ['early', 'middle', 'late']),
        {
            http_req_failed: ['rate<0.001'],
            http_req_duration: ['p(95)<300', 'p(99)<1000'],
            'http_req_duration{window:late}': ['p(95)<300', 'p(99)<1000'],
        },
    ),
});

export function setup() {
    return setupUsers();
}

export default function (data) {
    tagStage('window', WINDOWS, ['early', 'middle', 'late']);
    mixedIteration(data);
}

export const handleSummary = summaryHandler('soak');
