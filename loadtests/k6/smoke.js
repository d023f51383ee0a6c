// Smoke: a few VUs walk through every main endpoint once per iteration and check each answer.
// Strict: not one request may fail or get another status than expected, p95 < 300 ms, p99 < 1 s.
//
//   BASE_URL   default http://127.0.0.1:8080      VUS       default 3
//   DURATION   default 15s                        SLEEP_MS  pause between iterations, default 300
//   STALE_READS_OK=1  accept a 200 for the deleted task (instances without Redis; see below)
//
// Setup registers one user. Each iteration: log in (own session), refresh it, GET /users/me, create
// a project, list projects, get it, create three tasks (one with an Idempotency-Key, sent twice: the
// replay must give the same task), list them one per page following next_cursor, get a task (ETag),
// GET with If-None-Match (304), PATCH with If-Match (200, next ETag), PATCH with the stale ETag
// (412), delete the tasks (204), get a deleted one (404), delete the project, log out.

import { sleep } from 'k6';
import { check } from 'k6';
import {
    useScript, baseOptions, perRoute, summaryHandler, request, json, registerUser, login, refresh, int, R, randomHex,
} from './lib/setup.js';

useScript('smoke');
const STALE_READS_OK = __ENV.STALE_READS_OK === '1';

export const options = baseOptions({
    scenarios: {
        smoke: {
            executor: 'constant-vus',
            vus: int('VUS', 3),
            duration: __ENV.DURATION || '15s',
            gracefulStop: '10s',
        },
    },
    thresholds: Object.assign(
        {
            http_req_failed: ['rate==0'],
            http_req_duration: ['p(95)<300', 'p(99)<1000'],
            checks: ['rate==1'],
        },
        perRoute(),
    ),
});

export function setup() {
    return { user: registerUser('smoke') };
}

const ok = (cond, what) => check(null, { [what]: () => cond }, { kind: 'smoke' });
const etagOf = (res) => res.headers.Etag || res.headers.ETag;

export default function (data) {
    // Auth: a session of this iteration's own, rotated once.
    const session = login(data.user);
    if (!ok(session !== null && !!session.access && !!session.refresh, 'login gives an access and a refresh token')) return;
    ok(refresh(session), 'refresh rotates the session');
    const token = session.access;

    let res = request('GET', '/users/me', { name: R.me, token, expect: 200 });
    ok(json(res, 'email') === data.user.email, 'GET /users/me is the logged-in user');

    // Projects.
    res = request('POST', '/projects', {
        name: R.projects, token, expect: 201, body: { name: `smoke ${randomHex(6)}`, description: 'k6 smoke' },
    });
    const projectId = json(res, 'id');
    if (!ok(!!projectId && !!res.headers.Location, 'POST /projects gives an id and a Location')) return;
    res = request('GET', '/projects?limit=100', { name: R.projects, token, expect: 200 });
    ok((json(res, 'items') || []).some((p) => p.id === projectId), 'GET /projects lists the new project');
    res = request('GET', `/projects/${projectId}`, { name: R.project, token, expect: 200 });
    ok(json(res, 'role') === 'owner', 'GET /projects/{id}: the creator is the owner');

    // Tasks: three, the first created with an Idempotency-Key and then replayed.
    const key = `k6-smoke-${randomHex(16)}`;
    const first = { title: 'smoke task 0', priority: 'high', tags: ['k6', 'smoke'] };
    res = request('POST', `/projects/${projectId}/tasks`, {
        name: R.tasks, token, expect: 201, body: first, headers: { 'Idempotency-Key': key },
    });
    const taskId = json(res, 'id');
    if (!ok(!!taskId && etagOf(res) === '"v1"', 'POST /projects/{id}/tasks gives an id and ETag "v1"')) return;
    res = request('POST', `/projects/${projectId}/tasks`, {
        name: R.tasks, token, expect: 201, body: first, headers: { 'Idempotency-Key': key },
    });
    ok(json(res, 'id') === taskId, 'the same Idempotency-Key replays the same task');
    const ids = [taskId];
    for (let i = 1; i < 3; i++) {
        res = request('POST', `/projects/${projectId}/tasks`, {
            name: R.tasks, token, expect: 201, body: { title: `smoke task ${i}`, status: 'in_progress', priority: 'low' },
        });
        if (json(res, 'id')) ids.push(json(res, 'id'));
    }

    // List one per page, following the cursor to the end (bounded).
    const seen = [];
    let cursor = null;
    for (let page = 0; page < 5; page++) {
        const q = `limit=1&sort=created_at&order=asc${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
        res = request('GET', `/projects/${projectId}/tasks?${q}`, { name: R.tasks, token, expect: 200 });
        for (const t of json(res, 'items') || []) seen.push(t.id);
        cursor = json(res, 'next_cursor');
        if (!cursor) break;
    }
    ok(seen.length === 3 && ids.every((id) => seen.includes(id)), 'cursor pagination returns each task once');

    // Read, conditional read, conditional update.
    res = request('GET', `/tasks/${taskId}`, { name: R.task, token, expect: 200 });
    const etag = etagOf(res);
    ok(json(res, 'title') === first.title && !!etag, 'GET /tasks/{id} gives the task and an ETag');
    res = request('GET', `/tasks/${taskId}`, { name: R.task, token, expect: 304, headers: { 'If-None-Match': etag } });
    res = request('PATCH', `/tasks/${taskId}`, {
        name: R.task, token, expect: 200, headers: { 'If-Match': etag }, body: { status: 'done', title: 'smoke task 0 (done)' },
    });
    ok(json(res, 'status') === 'done' && etagOf(res) !== etag, 'PATCH with If-Match applies and gives a new ETag');
    request('PATCH', `/tasks/${taskId}`, {
        name: R.task, token, expect: 412, headers: { 'If-Match': etag }, body: { status: 'todo' },
    });

    // Delete.
    for (const id of ids) request('DELETE', `/tasks/${id}`, { name: R.task, token, expect: 204 });
    // Without Redis (run-local.sh --db sqlite) an instance only evicts its own in-process cache, so
    // another one may serve the deleted task for up to TASKLIGHT_CACHE_L1_TTL_MS: STALE_READS_OK=1.
    request('GET', `/tasks/${taskId}`, { name: R.task, token, expect: STALE_READS_OK ? [404, 200] : 404 });
    request('DELETE', `/projects/${projectId}`, { name: R.project, token, expect: 204 });
    request('POST', '/auth/logout', { name: R.logout, token, expect: 204 });

    sleep(int('SLEEP_MS', 300) / 1000);
}

export const handleSummary = summaryHandler('smoke');
