// Fill: creates TASKS tasks (default 100,000) in one project of one user, as fast as VUS virtual
// users (default 16) can, for benchmarks that need a large database (loadtests/bench-backup.sh).
// Every create must end in a 201: a 503 (the database busy: SQLite's writers queue on its busy
// timeout, and an overloaded machine can run it out) is retried after its Retry-After, at most
// three times, and counted in `fill_retries`; anything else fails the run. The server's per-user
// rate limit must allow the rate (raise TASKLIGHT_RATE_LIMIT_USER).
//
//   BASE_URL   default http://127.0.0.1:8080      TASKS  default 100000      VUS  default 16

import { check, sleep } from 'k6';
import { Counter } from 'k6/metrics';
import {
    useScript, baseOptions, registerUser, login, createProject, request, int, R,
} from './lib/setup.js';

const retries = new Counter('fill_retries');

useScript('fill');

export const options = baseOptions({
    scenarios: {
        fill: {
            executor: 'shared-iterations',
            vus: int('VUS', 16),
            iterations: int('TASKS', 100000),
            maxDuration: '15m',
        },
    },
    thresholds: { http_req_failed: ['rate==0'], checks: ['rate==1'] },
    summaryTrendStats: ['avg', 'med', 'p(99)', 'max'],
});

const WORDS = 'plan review ship fix write test deploy measure design document'.split(' ');

export function setup() {
    const session = login(registerUser('fill'));
    const project = createProject(session.access, 'Filled');
    return { access: session.access, project: project.id };
}

export default function (data) {
    const n = __ITER;
    const title = `${WORDS[n % 10]} ${WORDS[Math.floor(n / 10) % 10]} item ${n}`;
    const body = {
        title,
        description: `${title}: ${WORDS.join(' ')}`.slice(0, 120),
        tags: [WORDS[n % 10], 'bench'],
    };
    let status = 0;
    for (let attempt = 1; attempt <= 4 && status !== 201; attempt++) {
        const res = request('POST', `/projects/${data.project}/tasks`, {
            name: R.tasks,
            token: data.access,
            body,
            expect: attempt < 4 ? [201, 503] : 201,
        });
        status = res.status;
        if (status === 503) {
            retries.add(1);
            sleep(Number(res.headers['Retry-After'] || 1));
        }
    }
    check(status, { 'task created': (s) => s === 201 });
}
