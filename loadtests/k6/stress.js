// Stress: the load mix ramped well beyond the expected rate, stage by stage, to find the knee:
// where latency climbs and requests start to fail. Each request is tagged with its stage
// (`stage: 1-to100`, ...), so the summary shows latency, failure rate and request count per stage.
//
//   BASE_URL  default http://127.0.0.1:8080
//   STAGES    DURATION:TARGET,... in iterations/s (~requests/s); each stage ramps linearly from the
//             previous target to its own. Default 20s:100,30s:100,20s:300,30s:300,20s:600,30s:600,
//             20s:1000,30s:1000,10s:0 (about 3.5 minutes)
//   MAX_VUS   default 600
//   USERS, SEED_TASKS  the user pool made in setup
//
// Thresholds are loose on purpose: the run fails when more than 5% of requests fail, or when p95
// passes 2 s or p99 5 s over the whole run; it is aborted early when more than half fail.

import {
    useScript, baseOptions, perTag, summaryHandler, setupUsers, mixedIteration, stages, tagStage, int,
} from './lib/setup.js';

useScript('stress');

const STAGES = stages(__ENV.STAGES || '20s:100,30s:100,20s:300,30s:300,20s:600,30s:600,20s:1000,30s:1000,10s:0');
const LABELS = STAGES.map((s, i) => `${i + 1}-to${s.target}`);

export const options = baseOptions({
    scenarios: {
        stress: {
            executor: 'ramping-arrival-rate',
            startRate: 10,
            timeUnit: '1s',
            preAllocatedVUs: 50,
            maxVUs: int('MAX_VUS', 600),
            stages: STAGES,
            gracefulStop: '30s',
        },
    },
    thresholds: Object.assign(
        {
            http_req_failed: ['rate<0.05', { threshold: 'rate<0.5', abortOnFail: true, delayAbortEval: '20s' }],
            http_req_duration: ['p(95)<2000', 'p(99)<5000'],
        },
        perTag('stage', LABELS),
    ),
});

export function setup() {
    return setupUsers();
}

export default function (data) {
    tagStage('stage', STAGES, LABELS);
    mixedIteration(data);
}

export const handleSummary = summaryHandler('stress');
