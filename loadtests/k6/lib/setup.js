// Shared by the k6 scripts in loadtests/k6/: configuration from the environment, a request wrapper
// that makes every request traceable, helpers that create users, sessions, projects and tasks, the
// mixed workload of load/stress/spike/soak/failover, and the end-of-test summary.
//
//   BASE_URL     the service (nginx in front of the instances), default http://127.0.0.1:8080
//   SUMMARY_DIR  where <script>-summary.json is written, default . (run-local.sh: target/loadtests)
//   USERS        users created in setup for the mixed workload, default 10
//   SEED_TASKS   tasks created per user's project in setup, default 10
//
// Every request carries `X-Request-Id: k6-<script>-<vu>-<iteration>-<n>` (vu 0 is setup/teardown)
// and a fresh W3C `traceparent` (flags 01, sampled), so it can be found in the instances' logs
// (`request_id`) and in the trace viewer. Requests are tagged `name: <route template>` so metrics
// stay one series per route, and the `url` system tag is left out for the same reason.

import http from 'k6/http';
import { check, fail } from 'k6';
import exec from 'k6/execution';

export const BASE_URL = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/+$/, '');
export const API = `${BASE_URL}/api/v1`;
export const SUMMARY_DIR = (__ENV.SUMMARY_DIR || '.').replace(/\/+$/, '');
export const PASSWORD = 'k6-load-test-password-0123';

export const int = (name, fallback) => {
    const v = parseInt(__ENV[name] || '', 10);
    return Number.isFinite(v) ? v : fallback;
};

// STAGES-style lists: "30s:100,1m:400,30s:0" -> [{duration: '30s', target: 100}, ...].
export function stages(text) {
    return text.split(',').map((part) => {
        const [duration, target] = part.trim().split(':');
        const t = parseInt(target, 10);
        if (!duration || !Number.isFinite(t)) throw new Error(`bad stage "${part}": write DURATION:TARGET, e.g. 30s:100`);
        return { duration, target: t };
    });
}

// Route templates: the `name` tag of each request.
export const R = {
    register: '/api/v1/auth/register',
    login: '/api/v1/auth/login',
    refresh: '/api/v1/auth/refresh',
    logout: '/api/v1/auth/logout',
    me: '/api/v1/users/me',
    projects: '/api/v1/projects',
    project: '/api/v1/projects/{project_id}',
    tasks: '/api/v1/projects/{project_id}/tasks',
    task: '/api/v1/tasks/{task_id}',
    myTasks: '/api/v1/tasks',
    activity: '/api/v1/tasks/{task_id}/activity',
    comments: '/api/v1/tasks/{task_id}/comments',
};

// Options every script starts from. No `url` system tag: with `name` set it would still make one
// time series per task id.
export function baseOptions(extra) {
    return Object.assign(
        {
            systemTags: ['status', 'method', 'name', 'group', 'check', 'error', 'error_code', 'scenario', 'expected_response'],
            summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max'],
            setupTimeout: '120s',
            teardownTimeout: '60s',
            userAgent: 'tasklight-k6/1.0',
        },
        extra,
    );
}

// Threshold entries that always pass (`max>=0`), only so that the summary has per-route latency.
export function perRoute(names = Object.values(R)) {
    return perTag('name', names);
}

// The same for any tag: latency, failed rate and request count per value of `tag`.
export function perTag(tag, values) {
    const out = {};
    for (const v of values) {
        out[`http_req_duration{${tag}:${v}}`] = ['max>=0'];
        out[`http_req_failed{${tag}:${v}}`] = ['rate>=0'];
        out[`http_reqs{${tag}:${v}}`] = ['count>=0'];
    }
    return out;
}

// Tags this VU's next requests with `tag` = the label of the stage the scenario is in now
// (labels[i] for stages[i]), from the time since the scenario started.
export function tagStage(tag, stageList, labels) {
    const elapsed = Date.now() - exec.scenario.startTime;
    let end = 0;
    let label = labels[labels.length - 1];
    for (let i = 0; i < stageList.length; i++) {
        end += durationMs(stageList[i].duration);
        if (elapsed < end) {
            label = labels[i];
            break;
        }
    }
    exec.vu.metrics.tags[tag] = label;
    return label;
}

// "1m30s", "500ms", "2h" -> milliseconds.
export function durationMs(text) {
    let total = 0;
    const re = /(\d+(?:\.\d+)?)(ms|h|m|s)/g;
    let m;
    while ((m = re.exec(String(text))) !== null) {
        total += parseFloat(m[1]) * { ms: 1, s: 1000, m: 60000, h: 3600000 }[m[2]];
    }
    return total;
}

// ---------------------------------------------------------------------------------------------
// Requests.

let SCRIPT = 'k6';
// Names this script in request ids and its summary file. Call it once, at the top of the script.
export function useScript(name) {
    SCRIPT = name;
}

const hex = (n) => {
    let out = '';
    for (let i = 0; i < n; i++) out += Math.floor(Math.random() * 16).toString(16);
    return out;
};
export const randomHex = hex;

export function traceparent() {
    let trace = hex(32);
    let span = hex(16);
    while (/^0+$/.test(trace)) trace = hex(32);
    while (/^0+$/.test(span)) span = hex(16);
    return `00-${trace}-${span}-01`;
}

let counter = 0;
let counterIter = -1;
function nextRequestId() {
    let vu = 0;
    let iter = 0;
    try {
        vu = exec.vu.idInTest || 0;
        iter = exec.vu.iterationInScenario;
    } catch (e) {
        iter = 0; // setup and teardown
    }
    if (iter !== counterIter) {
        counterIter = iter;
        counter = 0;
    }
    counter += 1;
    return `k6-${SCRIPT}-${vu}-${iter}-${counter}`;
}

const callbacks = {};
function expectedCallback(statuses) {
    const key = statuses.join(',');
    if (!callbacks[key]) callbacks[key] = http.expectedStatuses(...statuses);
    return callbacks[key];
}

let reported = 0;
const REPORT_MAX = int('REPORT_MAX', 20); // unexpected answers printed per VU

// request(method, path, opts): `path` below /api/v1 (or absolute when it starts with http).
//   opts.body     object sent as JSON
//   opts.token    bearer token
//   opts.name     route template for the `name` tag (default: the path)
//   opts.expect   status or statuses this request should get: checked (tag `kind`, default
//                 `status`), and the only ones that do not count in http_req_failed
//   opts.headers, opts.tags, opts.timeout, opts.kind
export function request(method, path, opts = {}) {
    const headers = {
        Accept: 'application/json',
        'X-Request-Id': nextRequestId(),
        traceparent: traceparent(),
    };
    let body = null;
    if (opts.body !== undefined) {
        headers['Content-Type'] = 'application/json';
        body = JSON.stringify(opts.body);
    }
    if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
    Object.assign(headers, opts.headers || {});
    const name = opts.name || path;
    const params = {
        headers,
        tags: Object.assign({ name }, opts.tags || {}),
        timeout: opts.timeout || '30s',
    };
    const expect = opts.expect === undefined ? null : [].concat(opts.expect);
    if (expect) params.responseCallback = expectedCallback(expect);
    const url = path.startsWith('http') ? path : `${API}${path}`;
    const res = http.request(method, url, body, params);
    if (expect) {
        const ok = check(
            res,
            { [`${method} ${name} -> ${expect.join('|')}`]: (r) => expect.includes(r.status) },
            { kind: opts.kind || 'status' },
        );
        if (!ok && reported < REPORT_MAX) {
            reported += 1;
            const snippet = res.body ? String(res.body).slice(0, 200).replace(/\s+/g, ' ') : '';
            console.warn(
                `UNEXPECTED rid=${headers['X-Request-Id']} ${method} ${url} status=${res.status} ` +
                    `error=${res.error_code || 0}:${res.error || ''} body=${snippet}`,
            );
        }
    }
    return res;
}

export const json = (res, path) => {
    try {
        return path === undefined ? res.json() : res.json(path);
    } catch (e) {
        return undefined;
    }
};

// ---------------------------------------------------------------------------------------------
// Users, sessions, projects, tasks.

export function uniqueEmail(prefix) {
    return `k6-${prefix}-${Date.now()}-${hex(8)}@example.com`;
}

// Registers a user (201) and returns {email, password}; fails the test (in setup) otherwise.
export function registerUser(prefix = SCRIPT) {
    const email = uniqueEmail(prefix);
    const res = request('POST', '/auth/register', {
        name: R.register,
        body: { email, password: PASSWORD, display_name: `k6 ${prefix}` },
        expect: 201,
    });
    if (res.status !== 201) fail(`register ${email}: ${res.status} ${res.body}`);
    return { email, password: PASSWORD };
}

// Logs in: {email, password, access, refresh, at} or null when the answer was not 200.
export function login(user, opts = {}) {
    const res = request('POST', '/auth/login', {
        name: R.login,
        body: { email: user.email, password: user.password },
        expect: 200,
        tags: opts.tags,
    });
    if (res.status !== 200) return null;
    return {
        email: user.email,
        password: user.password,
        access: json(res, 'access_token'),
        refresh: json(res, 'refresh_token'),
        at: Date.now(),
    };
}

// Rotates a session's refresh token in place. Returns false when the server refused; the old
// refresh token must then not be presented again (reuse revokes the whole session).
export function refresh(session, opts = {}) {
    const res = request('POST', '/auth/refresh', {
        name: R.refresh,
        body: { refresh_token: session.refresh },
        expect: 200,
        tags: opts.tags,
    });
    if (res.status !== 200) return false;
    session.access = json(res, 'access_token');
    session.refresh = json(res, 'refresh_token');
    session.at = Date.now();
    return true;
}

export function createProject(token, name, opts = {}) {
    const res = request('POST', '/projects', {
        name: R.projects,
        token,
        body: { name, description: 'created by k6' },
        expect: 201,
        headers: opts.idempotent ? { 'Idempotency-Key': `k6-${hex(24)}` } : {},
    });
    return res.status === 201 ? json(res) : null;
}

// Creates a task: {id, etag} or null.
export function createTask(token, projectId, fields = {}, opts = {}) {
    const res = request('POST', `/projects/${projectId}/tasks`, {
        name: R.tasks,
        token,
        body: Object.assign({ title: `k6 task ${hex(6)}`, priority: 'medium', tags: ['k6'] }, fields),
        expect: 201,
        headers: opts.idempotent ? { 'Idempotency-Key': `k6-${hex(24)}` } : {},
        tags: opts.tags,
    });
    if (res.status !== 201) return null;
    return { id: json(res, 'id'), etag: res.headers.Etag || res.headers.ETag };
}

// Setup for the mixed workload: USERS users, each logged in with a project of SEED_TASKS tasks.
export function setupUsers(count = int('USERS', 10), seedTasks = int('SEED_TASKS', 10)) {
    const users = [];
    for (let i = 0; i < count; i++) {
        const user = registerUser(`${SCRIPT}-u${i}`);
        const session = login(user);
        if (!session) fail(`login of ${user.email} failed`);
        const project = createProject(session.access, `k6 ${SCRIPT} project ${i}`);
        if (!project) fail('create project failed');
        const taskIds = [];
        for (let t = 0; t < seedTasks; t++) {
            const task = createTask(session.access, project.id, {
                title: `seed ${t}`,
                priority: ['low', 'medium', 'high', 'urgent'][t % 4],
                tags: ['seed'],
            });
            if (!task) fail('create seed task failed');
            taskIds.push(task.id);
        }
        users.push({ email: user.email, password: user.password, access: session.access, at: session.at, projectId: project.id, taskIds });
    }
    return { users, startedAt: Date.now() };
}

// ---------------------------------------------------------------------------------------------
// The mixed workload: ~70% reads, ~20% writes, ~10% auth. One request per call.

// Access tokens live 15 minutes; a VU renews its own before this age (ms).
const RENEW_AFTER_MS = int('TOKEN_RENEW_S', 600) * 1000;

// Per VU: which user it acts as, its own session once it has logged in, its own tasks with ETags.
let me = null;
function vuState(data) {
    if (!me) {
        const u = data.users[(exec.vu.idInTest - 1) % data.users.length];
        me = { user: u, session: null, own: [] };
    }
    return me;
}

function currentToken(st) {
    if (st.session) return st.session.access;
    return st.user.access;
}

function tokenAge(st) {
    return Date.now() - (st.session ? st.session.at : st.user.at);
}

function authOp(st) {
    if (st.session && Math.random() < 0.5) {
        if (!refresh(st.session, { tags: { op: 'refresh' } })) st.session = null;
        return 'refresh';
    }
    const s = login(st.user, { tags: { op: 'login' } });
    if (s) st.session = s;
    return 'login';
}

export function mixedIteration(data) {
    const st = vuState(data);
    // A token near its end of life is renewed first (this request counts as the auth share).
    if (tokenAge(st) > RENEW_AFTER_MS) return authOp(st);
    const token = currentToken(st);
    const project = st.user.projectId;
    const roll = Math.random();
    if (roll < 0.05) {
        // My tasks across every project, most recently changed first.
        request('GET', '/tasks?limit=20&sort=updated_at&order=desc', {
            name: R.myTasks, token, expect: 200, tags: { op: 'my_tasks' },
        });
        return 'my_tasks';
    }
    if (roll < 0.25) {
        // List the project's tasks; now and then follow the cursor to the next page.
        const res = request('GET', `/projects/${project}/tasks?limit=20&sort=created_at&order=desc`, {
            name: R.tasks, token, expect: 200, tags: { op: 'list_tasks' },
        });
        const cursor = json(res, 'next_cursor');
        if (cursor && Math.random() < 0.2) {
            request('GET', `/projects/${project}/tasks?limit=20&sort=created_at&order=desc&cursor=${encodeURIComponent(cursor)}`, {
                name: R.tasks, token, expect: 200, tags: { op: 'list_tasks' },
            });
        }
        return 'list_tasks';
    }
    if (roll < 0.40) {
        const pool = st.own.length > 0 && Math.random() < 0.5 ? st.own.map((t) => t.id) : st.user.taskIds;
        const id = pool[Math.floor(Math.random() * pool.length)];
        request('GET', `/tasks/${id}`, { name: R.task, token, expect: 200, tags: { op: 'get_task' } });
        return 'get_task';
    }
    if (roll < 0.45) {
        // A seed task's discussion, oldest first.
        const id = st.user.taskIds[Math.floor(Math.random() * st.user.taskIds.length)];
        request('GET', `/tasks/${id}/comments?limit=20`, { name: R.comments, token, expect: 200, tags: { op: 'list_comments' } });
        return 'list_comments';
    }
    if (roll < 0.6) {
        request('GET', '/users/me', { name: R.me, token, expect: 200, tags: { op: 'users_me' } });
        return 'users_me';
    }
    if (roll < 0.7) {
        request('GET', '/projects?limit=20', { name: R.projects, token, expect: 200, tags: { op: 'list_projects' } });
        return 'list_projects';
    }
    if (roll < 0.9) {
        if (roll < 0.73) {
            // Comment on a seed task (not on the VU's own tasks: a comment bumps the task's
            // version, and the updates below hold their tasks' ETags).
            const id = st.user.taskIds[Math.floor(Math.random() * st.user.taskIds.length)];
            request('POST', `/tasks/${id}/comments`, {
                name: R.comments, token, expect: 201, tags: { op: 'create_comment' },
                body: { body: `k6 ${SCRIPT} comment: looks **fine** to VU ${exec.vu.idInTest}` },
            });
            return 'create_comment';
        }
        if (roll < 0.8 || st.own.length === 0) {
            const task = createTask(token, project, { title: `k6 ${SCRIPT} ${exec.vu.idInTest}`, tags: ['k6', SCRIPT] }, {
                idempotent: true, tags: { op: 'create_task' },
            });
            if (task) {
                st.own.push(task);
                if (st.own.length > 50) st.own.shift();
            }
            return 'create_task';
        }
        // Update one of this VU's own tasks with the ETag it holds: nobody else writes to it, so
        // the If-Match precondition holds and the answer is 200 with the next ETag.
        const task = st.own[Math.floor(Math.random() * st.own.length)];
        const res = request('PATCH', `/tasks/${task.id}`, {
            name: R.task, token, expect: 200, tags: { op: 'update_task' },
            headers: { 'If-Match': task.etag },
            body: { status: ['todo', 'in_progress', 'done'][Math.floor(Math.random() * 3)], priority: 'high' },
        });
        if (res.status === 200) task.etag = res.headers.Etag || res.headers.ETag;
        return 'update_task';
    }
    return authOp(st);
}

// ---------------------------------------------------------------------------------------------
// End-of-test summary.

const val = (data, metric, field) => {
    const m = data.metrics[metric];
    return m && m.values && m.values[field] !== undefined ? m.values[field] : undefined;
};
const ms = (v) => (v === undefined ? '-' : v.toFixed(1));

// handleSummary for a script: writes SUMMARY_DIR/<script>-summary.json (k6's summary data plus a
// `tasklight` object with the headline figures) and prints a short text summary to stdout.
export function summaryHandler(script) {
    return function handleSummary(data) {
        const thresholds = [];
        let ok = true;
        for (const [name, metric] of Object.entries(data.metrics)) {
            for (const [expr, result] of Object.entries(metric.thresholds || {})) {
                if (expr === 'max>=0' || expr === 'count>=0' || expr === 'rate>=0') continue; // perRoute()/perTag() entries
                thresholds.push({ metric: name, threshold: expr, ok: result.ok });
                ok = ok && result.ok;
            }
        }
        const headline = {
            script,
            base_url: BASE_URL,
            duration_s: data.state ? data.state.testRunDurationMs / 1000 : undefined,
            requests: val(data, 'http_reqs', 'count') || 0,
            requests_per_s: val(data, 'http_reqs', 'rate') || 0,
            failed_rate: val(data, 'http_req_failed', 'rate') || 0,
            failed: val(data, 'http_req_failed', 'passes') || 0,
            iterations: val(data, 'iterations', 'count') || 0,
            dropped_iterations: val(data, 'dropped_iterations', 'count') || 0,
            checks_rate: val(data, 'checks', 'rate'),
            latency_ms: {
                avg: val(data, 'http_req_duration', 'avg'),
                med: val(data, 'http_req_duration', 'med'),
                p95: val(data, 'http_req_duration', 'p(95)'),
                p99: val(data, 'http_req_duration', 'p(99)'),
                max: val(data, 'http_req_duration', 'max'),
            },
            thresholds,
            thresholds_ok: ok,
        };
        // Sub-metrics (perRoute/perTag, and any tagged threshold): latency, failures, count.
        const subs = {};
        for (const k of Object.keys(data.metrics)) {
            const m = /^(http_req_duration|http_req_failed|http_reqs)\{(.*)\}$/.exec(k);
            if (!m) continue;
            subs[m[2]] = subs[m[2]] || {};
            subs[m[2]][m[1]] = data.metrics[k].values;
        }
        const routes = Object.keys(subs)
            .sort()
            .filter((k) => subs[k].http_req_duration && !(subs[k].http_reqs && subs[k].http_reqs.count === 0))
            .map((k) => {
                const v = subs[k].http_req_duration;
                const n = subs[k].http_reqs ? `${subs[k].http_reqs.count}`.padStart(7) + ' req' : '';
                const f = subs[k].http_req_failed ? `  failed ${(subs[k].http_req_failed.rate * 100).toFixed(2)}%` : '';
                const label = k.replace(/^name:/, '');
                return `    ${label.padEnd(40)} ${n}  med ${ms(v.med).padStart(7)}  p95 ${ms(v['p(95)']).padStart(7)}  p99 ${ms(v['p(99)']).padStart(7)}  max ${ms(v.max).padStart(8)} ms${f}`;
            });
        const extra = Object.keys(data.metrics)
            .filter((k) => data.metrics[k].type === 'counter' && !k.startsWith('http_') && !['iterations', 'data_sent', 'data_received', 'dropped_iterations'].includes(k))
            .map((k) => `    ${k}: ${val(data, k, 'count')}`);
        const l = headline.latency_ms;
        const text =
            `\n=== ${script}: ${headline.requests} requests in ${ms(headline.duration_s)} s ` +
            `(${headline.requests_per_s.toFixed(1)}/s), ${headline.failed} failed ` +
            `(${(headline.failed_rate * 100).toFixed(2)}%), ${headline.iterations} iterations, ` +
            `${headline.dropped_iterations} dropped\n` +
            `  latency   avg ${ms(l.avg)}  med ${ms(l.med)}  p95 ${ms(l.p95)}  p99 ${ms(l.p99)}  max ${ms(l.max)} ms\n` +
            (headline.checks_rate !== undefined
                ? `  checks    ${(headline.checks_rate * 100).toFixed(2)}% passed (${val(data, 'checks', 'passes')} passed, ${val(data, 'checks', 'fails')} failed)\n`
                : '') +
            (routes.length ? `  by route / tag\n${routes.join('\n')}\n` : '') +
            (extra.length ? `  counters\n${extra.join('\n')}\n` : '') +
            `  thresholds ${ok ? 'passed' : 'FAILED'}\n` +
            thresholds.map((t) => `    ${t.ok ? 'ok  ' : 'FAIL'} ${t.metric}: ${t.threshold}\n`).join('') +
            `  summary   ${SUMMARY_DIR}/${script}-summary.json\n`;
        return {
            stdout: text,
            [`${SUMMARY_DIR}/${script}-summary.json`]: JSON.stringify(Object.assign({ tasklight: headline }, data), null, 2) + '\n',
        };
    };
}
