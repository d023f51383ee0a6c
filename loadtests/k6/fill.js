// Fill: creates TASKS tasks (default 100,000) in one project of one user, as fast as VUS virtual
// users (default 16) can, for benchmarks that need a large database (loadtests/bench-backup.sh).
// Every create must answer 201. The server's per-user rate limit must allow it (raise
// TASKLIGHT_RATE_LIMIT_USER).
//
//   BASE_URL   default http://127.0.0.1:8080      TASKS  default 100000      VUS  default 16

import { check } from 'k6';
import {
    useScript, baseOptions, registerUser, login, createProject, createTask, int,
} from './lib/setup.js';

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
    const res = createTask(data.access, data.project, {
        title,
        description: `${title}: ${WORDS.join(' ')}`.slice(0, 120),
        tags: [WORDS[n % 10], 'bench'],
    });
    check(res, { 'task created': (r) => r !== null });
}
