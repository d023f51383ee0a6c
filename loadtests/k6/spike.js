// Spike: a quiet baseline, a sudden jump to many times the rate, then back to the baseline. The
// service must survive the spike (few failures) and recover: once the spike is over, latency must be
// back to normal. Requests are tagged `phase: baseline|spike|recovery`.
//
//   BASE_URL     default http://127.0.0.1:8080
//   BASE_RATE    iterations/s before and after, default 20
//   SPIKE_RATE   iterations/s at the top, default 800 (about the knee stress.js finds on a 2-core
//                machine running everything: the top drops some iterations there)
//   BASELINE     time at the baseline first, default 20s
//   SPIKE        time at the top, default 30s (reached in 5 s, left in 5 s)
//   RECOVERY     time at the baseline after, default 40s
//
// Thresholds: < 1% failed and p95 < 1 s, p99 < 3 s over the run; in the recovery phase (after the
// first 10 s of it) p95 < 300 ms, p99 < 1 s and no failures.

import { useScript, baseOptions, perTag, summaryHandler, setupUsers, mixedIteration, tagStage, durationMs, int } from './lib/setup.js';

useScript('spike');

const BASE_RATE = int('BASE_RATE', 20);
const SPIKE_RATE = int('SPIKE_RATE', 800);
const RECOVERY = __ENV.RECOVERY || '40s';
const STAGES = [
    { duration: __ENV.BASELINE || '20s', target: BASE_RATE },
    { duration: '5s', target: SPIKE_RATE },
    { duration: __ENV.SPIKE || '30s', target: SPIKE_RATE },
    { duration: '5s', target: BASE_RATE },
    { duration: '10s', target: BASE_RATE },
    { duration: `${Math.max(1, durationMs(RECOVERY) / 1000 - 10)}s`, target: BASE_RATE },
];
const LABELS = ['baseline', 'spike', 'spike', 'spike', 'settling', 'recovery'];

export const options = baseOptions({
    scenarios: {
        spike: {
            executor: 'ramping-arrival-rate',
            startRate: BASE_RATE,
            timeUnit: '1s',
            preAllocatedVUs: 50,
            maxVUs: Math.max(100, SPIKE_RATE * 2),
            stages: STAGES,
            gracefulStop: '30s',
        },
    },
    thresholds: Object.assign(
        perTag('phase', ['baseline', 'spike', 'settling', 'recovery']),
        {
            http_req_failed: ['rate<0.01'],
            http_req_duration: ['p(95)<1000', 'p(99)<3000'],
            'http_req_duration{phase:recovery}': ['p(95)<300', 'p(99)<1000'],
            'http_req_failed{phase:recovery}': ['rate==0'],
        },
    ),
});

export function setup() {
    return setupUsers();
}

export default function (data) {
    tagStage('phase', STAGES, LABELS);
    mixedIteration(data);
}

export const handleSummary = summaryHandler('spike');
