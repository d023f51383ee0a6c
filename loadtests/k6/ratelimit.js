// Rate limit: sends more than a quota allows and asserts the refusals are well-formed. Every 429
// must carry `Retry-After` (whole seconds >= 1), `RateLimit-Policy` naming the policy, `RateLimit`,
// and an `application/problem+json` body with `"status": 429`; every allowed answer carries the two
// RateLimit headers too. 429s are expected here, so they do not count in http_req_failed.
//
//   BASE_URL     default http://127.0.0.1:8080
//   POLICY       user (default: GET /users/me with a token, the per-user quota) or ip (the same
//                request without a token, the per-address quota for anonymous requests; allowed
//                answers are then 401)
//   RATE         requests per second, default 40        DURATION  default 15s
//   EXPECT_QUOTA the quota the instances enforce for POLICY (LIMIT/WINDOW[,burst=N]); when given,
//                the allowed answers must not exceed what it entitles to (burst + rate x duration,
//                times LIMITER_SCOPES, + 10% + 5). run-local.sh sets it.
//   LIMITER_SCOPES  independent limiters (1 with Redis; the number of instances without it)
//
// Against the service's default quotas (user 1200/min, burst 100) use e.g. RATE=100 DURATION=20s.

import http from 'k6/http';
import { check } from 'k6';
import { Counter } from 'k6/metrics';
import { useScript, baseOptions, summaryHandler, request, registerUser, login, durationMs, int, R } from './lib/setup.js';

useScript('ratelimit');

const POLICY = __ENV.POLICY || 'user';
if (!['user', 'ip'].includes(POLICY)) throw new Error('POLICY must be user or ip');
const RATE = int('RATE', 40);
const DURATION = __ENV.DURATION || '15s';
const ALLOWED_STATUS = POLICY === 'user' ? 200 : 401;

const limited = new Counter('ratelimited_responses');
const allowed = new Counter('allowed_responses');

// The most allowed answers EXPECT_QUOTA entitles to over the scenario, with a margin.
function entitlement() {
    const text = __ENV.EXPECT_QUOTA;
    if (!text) return null;
    const m = /^\s*(\d+)\s*\/\s*(\d+)([smh])\s*(?:,\s*burst\s*=\s*(\d+))?\s*$/.exec(text);
    if (!m) throw new Error(`EXPECT_QUOTA: write LIMIT/WINDOW[,burst=N], got "${text}"`);
    const limit = parseInt(m[1], 10);
    const window = parseInt(m[2], 10) * { s: 1, m: 60, h: 3600 }[m[3]];
    const burst = m[4] ? parseInt(m[4], 10) : Math.max(1, Math.floor(limit / 10));
    const seconds = durationMs(DURATION) / 1000;
    const scopes = int('LIMITER_SCOPES', 1);
    return Math.ceil(scopes * (burst + (limit / window) * seconds) * 1.1 + 5);
}
const MAX_ALLOWED = entitlement();

const thresholds = {
    // 429 is declared an expected status below: only other errors count as failed.
    http_req_failed: ['rate==0'],
    http_req_duration: ['p(95)<300', 'p(99)<1000'],
    'checks{kind:ratelimit}': ['rate==1'],
    checks: ['rate==1'],
    ratelimited_responses: ['count>0'],
    allowed_responses: MAX_ALLOWED === null ? ['count>0'] : ['count>0', `count<=${MAX_ALLOWED}`],
};

export const options = baseOptions({
    scenarios: {
        ratelimit: {
            executor: 'constant-arrival-rate',
            rate: RATE,
            timeUnit: '1s',
            duration: DURATION,
            preAllocatedVUs: 10,
            maxVUs: 50,
            gracefulStop: '10s',
        },
    },
    thresholds,
});

http.setResponseCallback(http.expectedStatuses({ min: 200, max: 299 }, 429));

export function setup() {
    if (POLICY === 'ip') return { token: null };
    const session = login(registerUser('ratelimit'));
    if (!session) throw new Error('login failed');
    return { token: session.access };
}

const header = (res, name) => res.headers[name] || res.headers[name.toLowerCase()] || '';

export default function (data) {
    const res = request('GET', '/users/me', { name: R.me, token: data.token, expect: [ALLOWED_STATUS, 429] });
    const policy = header(res, 'Ratelimit-Policy');
    const state = header(res, 'Ratelimit');
    if (res.status === 429) {
        limited.add(1);
        let body = {};
        try {
            body = res.json();
        } catch (e) {
            body = {};
        }
        const retry = parseInt(header(res, 'Retry-After'), 10);
        check(
            res,
            {
                '429 has Retry-After >= 1': () => Number.isInteger(retry) && retry >= 1,
                [`429 has RateLimit-Policy naming "${POLICY}"`]: () => policy.includes(`"${POLICY}";q=`),
                '429 has RateLimit': () => /"[a-z-]+";r=\d+;t=\d+/.test(state),
                '429 is application/problem+json': () => header(res, 'Content-Type').startsWith('application/problem+json'),
                '429 body has status 429': () => body.status === 429,
            },
            { kind: 'ratelimit' },
        );
    } else if (res.status === ALLOWED_STATUS) {
        allowed.add(1);
        check(
            res,
            {
                [`${ALLOWED_STATUS} has RateLimit-Policy and RateLimit`]: () => policy.includes(`"${POLICY}";q=`) && /r=\d+;t=\d+/.test(state),
            },
            { kind: 'ratelimit' },
        );
    }
}

export const handleSummary = summaryHandler('ratelimit');
