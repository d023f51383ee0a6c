// Drain under load: a steady mix of reads and writes through nginx while run.sh stops (SIGTERM) and
// restarts two of the three instances behind it. Any failed request fails the thresholds, and so
// fails the run.
//
//   BASE_URL      nginx, e.g. http://127.0.0.1:8080 (required)
//   RATE          iterations (= requests) per second, default 80
//   DURATION      how long the mix runs, default 20s
//   SUMMARY_PATH  where handleSummary writes the JSON summary run.sh reads, default drain-summary.json
//
// Run with `--console-output FILE`: every acknowledged write is logged there as
// `created-task <id>` and every failed or unexpected response as `FAILED ...`, so run.sh can check
// each acknowledged task against the database and name the requests that failed.

import http from 'k6/http';
import { check, fail } from 'k6';
import { Counter } from 'k6/metrics';

const BASE_URL = __ENV.BASE_URL;
if (!BASE_URL) {
    throw new Error('BASE_URL is required (nginx in front of the instances)');
}
const API = `${BASE_URL}/api/v1`;
const RATE = parseInt(__ENV.RATE || '80', 10);
const DURATION = __ENV.DURATION || '20s';
const SUMMARY_PATH = __ENV.SUMMARY_PATH || 'drain-summary.json';
const SEED_TASKS = 5;

// Tasks the server answered 201 for during the scenario (the seed tasks made in setup are not
// counted here; the summary carries them separately).
const acknowledgedWrites = new Counter('acknowledged_writes');
// 201 answers whose body carried a task id (should equal acknowledged_writes).
const createdTaskIds = new Counter('created_task_ids');
// Responses with another status than the one expected for the operation (any non-2xx included).
const unexpectedResponses = new Counter('unexpected_responses');

export const options = {
    scenarios: {
        mix: {
            executor: 'constant-arrival-rate',
            rate: RATE,
            timeUnit: '1s',
            duration: DURATION,
            // Requests take a few ms; 40 VUs cover 80/s even at 500 ms each.
            preAllocatedVUs: 40,
            maxVUs: 120,
            gracefulStop: '15s',
        },
    },
    thresholds: {
        // The point of the test: not one request may fail, including while an instance drains.
        http_req_failed: ['rate==0'],
        checks: ['rate==1'],
        unexpected_responses: ['count==0'],
        // Generous: a 2-core machine runs nginx, three instances, PostgreSQL, Redis and k6.
        'http_req_duration{scenario:mix}': ['p(95)<1500', 'p(99)<4000'],
    },
    setupTimeout: '60s',
    teardownTimeout: '10s',
    summaryTrendStats: ['avg', 'min', 'med', 'p(95)', 'p(99)', 'max'],
    // The connection to nginx is reused; nginx's connections to the instances are what drain.
    noConnectionReuse: false,
    userAgent: 'tasklight-drain-test/1.0',
};

const hex = (n) => {
    let out = '';
    for (let i = 0; i < n; i++) {
        out += Math.floor(Math.random() * 16).toString(16);
    }
    return out;
};

function headers(requestId, token) {
    const h = {
        'Content-Type': 'application/json',
        'X-Request-Id': requestId,
        traceparent: `00-${hex(32)}-${hex(16)}-01`,
    };
    if (token) {
        h.Authorization = `Bearer ${token}`;
    }
    return h;
}

function params(requestId, token, op) {
    return { headers: headers(requestId, token), tags: { op }, timeout: '20s' };
}

// Setup: one user, one project, a few tasks to read. Each step must succeed.
export function setup() {
    const email = `drain-${Date.now()}-${hex(6)}@example.com`;
    const password = 'drain-test-password-long-enough';
    let res = http.post(
        `${API}/auth/register`,
        JSON.stringify({ email, password, display_name: 'Drain test' }),
        params('drain-setup-register', null, 'setup'),
    );
    if (res.status !== 201) fail(`register: ${res.status} ${res.body}`);
    res = http.post(`${API}/auth/login`, JSON.stringify({ email, password }), params('drain-setup-login', null, 'setup'));
    if (res.status !== 200) fail(`login: ${res.status} ${res.body}`);
    const token = res.json('access_token');
    res = http.post(
        `${API}/projects`,
        JSON.stringify({ name: 'Drain under load', description: 'Tasks written while instances drain' }),
        params('drain-setup-project', token, 'setup'),
    );
    if (res.status !== 201) fail(`create project: ${res.status} ${res.body}`);
    const projectId = res.json('id');
    if (__ENV.WEBHOOK_URL) {
        // run.sh's receiver gets every task.created event; it checks that each acknowledged
        // write's event arrives, across the drains and a SIGKILL.
        res = http.post(
            `${API}/projects/${projectId}/webhooks`,
            JSON.stringify({ url: __ENV.WEBHOOK_URL, event_types: ['task.created'] }),
            params('drain-setup-webhook', token, 'setup'),
        );
        if (res.status !== 201) fail(`create webhook: ${res.status} ${res.body}`);
    }
    const seedTaskIds = [];
    for (let i = 0; i < SEED_TASKS; i++) {
        res = http.post(
            `${API}/projects/${projectId}/tasks`,
            JSON.stringify({ title: `Seed task ${i}`, priority: 'medium', tags: ['seed'] }),
            params(`drain-setup-task-${i}`, token, 'setup'),
        );
        if (res.status !== 201) fail(`seed task: ${res.status} ${res.body}`);
        seedTaskIds.push(res.json('id'));
    }
    return { token, projectId, seedTaskIds, email };
}

// Task ids this VU created, to read some of them back.
const mine = [];

function expect(res, op, requestId, status) {
    const ok = check(res, { [`${op}: ${status}`]: (r) => r.status === status }, { op });
    if (!ok) {
        unexpectedResponses.add(1, { op });
        const body = res.body ? String(res.body).slice(0, 200).replace(/\s+/g, ' ') : '';
        console.log(
            `FAILED rid=${requestId} ${res.request ? res.request.method : '?'} ${res.url} status=${res.status} ` +
                `error=${res.error_code || 0}:${res.error || ''} body=${body}`,
        );
    }
    return ok;
}

export default function (data) {
    const requestId = `drain-${__VU}-${__ITER}`;
    const roll = Math.random();
    if (roll < 0.3) {
        // 30% writes.
        const res = http.post(
            `${API}/projects/${data.projectId}/tasks`,
            JSON.stringify({
                title: `Task ${requestId}`,
                description: 'written during the drain test',
                priority: ['low', 'medium', 'high', 'urgent'][__ITER % 4],
                tags: ['drain'],
            }),
            params(requestId, data.token, 'create_task'),
        );
        if (expect(res, 'create_task', requestId, 201)) {
            acknowledgedWrites.add(1);
            let id = null;
            try {
                id = res.json('id');
            } catch (e) {
                id = null;
            }
            if (id) {
                createdTaskIds.add(1);
                console.log(`created-task ${id} rid=${requestId}`);
                mine.push(id);
                if (mine.length > 50) mine.shift();
            } else {
                unexpectedResponses.add(1, { op: 'create_task_body' });
                console.log(`FAILED rid=${requestId} 201 without a task id: ${String(res.body).slice(0, 200)}`);
            }
        }
    } else if (roll < 0.6) {
        // 30%: the project's task list.
        const res = http.get(
            `${API}/projects/${data.projectId}/tasks?limit=20&sort=created_at&order=desc`,
            params(requestId, data.token, 'list_tasks'),
        );
        expect(res, 'list_tasks', requestId, 200);
    } else if (roll < 0.8) {
        // 20%: who am I.
        const res = http.get(`${API}/users/me`, params(requestId, data.token, 'users_me'));
        expect(res, 'users_me', requestId, 200);
    } else {
        // 20%: one task, one of this VU's own when it has some, else a seed task.
        const pool = mine.length > 0 && Math.random() < 0.7 ? mine : data.seedTaskIds;
        const id = pool[Math.floor(Math.random() * pool.length)];
        const res = http.get(`${API}/tasks/${id}`, params(requestId, data.token, 'get_task'));
        expect(res, 'get_task', requestId, 200);
    }
}

function value(data, metric, field, fallback = 0) {
    const m = data.metrics[metric];
    return m && m.values && m.values[field] !== undefined ? m.values[field] : fallback;
}

export function handleSummary(data) {
    const thresholds = {};
    let thresholdsOk = true;
    for (const [name, metric] of Object.entries(data.metrics)) {
        for (const [expr, result] of Object.entries(metric.thresholds || {})) {
            thresholds[`${name}: ${expr}`] = result.ok;
            thresholdsOk = thresholdsOk && result.ok;
        }
    }
    const setup = data.setup_data || {};
    const summary = {
        project_id: setup.projectId || null,
        // A test account's access token (15 minutes), for run.sh's writes after the load.
        token: setup.token || null,
        seed_tasks: setup.seedTaskIds ? setup.seedTaskIds.length : 0,
        rate_per_s: RATE,
        duration: DURATION,
        total_requests: value(data, 'http_reqs', 'count'),
        // http_req_failed is a rate: `passes` counts the failed requests.
        failed_requests: value(data, 'http_req_failed', 'passes'),
        iterations: value(data, 'iterations', 'count'),
        dropped_iterations: value(data, 'dropped_iterations', 'count'),
        acknowledged_writes: value(data, 'acknowledged_writes', 'count'),
        created_task_ids: value(data, 'created_task_ids', 'count'),
        unexpected_responses: value(data, 'unexpected_responses', 'count'),
        checks_passed: value(data, 'checks', 'passes'),
        checks_failed: value(data, 'checks', 'fails'),
        latency_ms: {
            med: value(data, 'http_req_duration{scenario:mix}', 'med', value(data, 'http_req_duration', 'med')),
            p95: value(data, 'http_req_duration{scenario:mix}', 'p(95)', value(data, 'http_req_duration', 'p(95)')),
            p99: value(data, 'http_req_duration{scenario:mix}', 'p(99)', value(data, 'http_req_duration', 'p(99)')),
            max: value(data, 'http_req_duration{scenario:mix}', 'max', value(data, 'http_req_duration', 'max')),
        },
        thresholds,
        thresholds_ok: thresholdsOk,
    };
    const line =
        `k6: ${summary.total_requests} requests, ${summary.failed_requests} failed, ` +
        `${summary.acknowledged_writes} writes acknowledged, ${summary.unexpected_responses} unexpected, ` +
        `p95 ${summary.latency_ms.p95.toFixed(1)} ms, p99 ${summary.latency_ms.p99.toFixed(1)} ms, ` +
        `thresholds ${thresholdsOk ? 'passed' : 'FAILED'}\n` +
        Object.entries(thresholds)
            .map(([k, ok]) => `  ${ok ? 'ok  ' : 'FAIL'} ${k}\n`)
            .join('');
    return {
        stdout: line,
        [SUMMARY_PATH]: JSON.stringify(summary, null, 2) + '\n',
    };
}
