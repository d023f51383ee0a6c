// Drives Tasklight's Swagger UI (/docs) in headless chromium through playwright-core.
// Environment (set by run.sh): BASE_URL, ACCESS_TOKEN, USER_EMAIL, SCREENSHOT, CHROMIUM,
// BROWSER_TIMEOUT_MS (every wait is bounded by it; default 15000).
import { chromium } from 'playwright-core';

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined || value === '') {
    console.error(`swagger-ui.mjs: ${name} is not set`);
    process.exit(2);
  }
  return value;
};
const BASE_URL = env('BASE_URL');
const TOKEN = env('ACCESS_TOKEN');
const EMAIL = env('USER_EMAIL');
const SCREENSHOT = env('SCREENSHOT');
const CHROMIUM = env('CHROMIUM', '/usr/bin/chromium');
const TIMEOUT = Number(env('BROWSER_TIMEOUT_MS', '15000'));

const base = new URL(BASE_URL);
if (base.hostname !== '127.0.0.1') {
  console.error(`swagger-ui.mjs: BASE_URL must be on 127.0.0.1, got ${BASE_URL}`);
  process.exit(2);
}

class Failure extends Error {}
const fail = (message) => { throw new Failure(message); };
const step = (message) => console.log(`swagger-ui.mjs: ${message}`);

// waitFor(locator, what): waits (bounded) until the locator is visible; fails naming `what`.
async function waitFor(locator, what, state = 'visible') {
  try {
    await locator.first().waitFor({ state, timeout: TIMEOUT });
  } catch {
    fail(`${what} was not found within ${TIMEOUT} ms`);
  }
  return locator.first();
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  args: ['--no-sandbox', '--disable-dev-shm-usage'],
  timeout: TIMEOUT,
});
let page;
let code = 0;
try {
  const context = await browser.newContext({ viewport: { width: 1400, height: 1000 } });
  context.setDefaultTimeout(TIMEOUT);
  // Only 127.0.0.1 traffic: anything else (a CDN, fonts, analytics) is refused and reported.
  const offHost = [];
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (url.hostname === '127.0.0.1' || url.protocol === 'data:' || url.protocol === 'blob:') {
      return route.continue();
    }
    offHost.push(url.href);
    return route.abort('blockedbyclient');
  });
  page = await context.newPage();
  const pageErrors = [];
  page.on('pageerror', (error) => pageErrors.push(String(error)));

  // The tags of the OpenAPI document, from the server itself.
  const specResponse = await page.request.get(`${BASE_URL}/api/v1/openapi.json`, { timeout: TIMEOUT });
  if (!specResponse.ok()) fail(`GET /api/v1/openapi.json returned ${specResponse.status()}`);
  const spec = await specResponse.json();
  const tags = (spec.tags ?? []).map((tag) => tag.name);
  if (tags.length === 0) fail('the OpenAPI document lists no tags');
  step(`OpenAPI document: ${tags.length} tags (${tags.join(', ')})`);

  // Swagger UI renders.
  const docs = await page.goto(`${BASE_URL}/docs`, { waitUntil: 'domcontentloaded', timeout: TIMEOUT });
  if (!docs || !docs.ok()) fail(`GET /docs returned ${docs ? docs.status() : 'no response'}`);
  await waitFor(page.locator('.swagger-ui .information-container .title'),
    `the Swagger UI title (${pageErrors.join('; ') || 'no page errors'})`);
  await waitFor(page.locator('.swagger-ui .opblock-tag'), 'any operation tag section in Swagger UI');
  step(`Swagger UI rendered: "${(await page.locator('.swagger-ui .information-container .title').first().innerText()).split('\n')[0]}"`);

  // Every tag of the document is listed in the page.
  const shown = await page.locator('.swagger-ui .opblock-tag').evaluateAll((nodes) =>
    nodes.map((node) => node.getAttribute('data-tag') ?? node.textContent.trim()));
  const missing = tags.filter((tag) => !shown.includes(tag));
  if (missing.length > 0) {
    fail(`tags of the OpenAPI document missing from Swagger UI: ${missing.join(', ')} (page shows: ${shown.join(', ')})`);
  }
  step(`all ${tags.length} tags are listed in the page`);

  // Authorize with the bearer token.
  const authorize = await waitFor(page.locator('.swagger-ui .auth-wrapper button.authorize'), 'the "Authorize" button');
  await authorize.click();
  const dialog = await waitFor(page.locator('.swagger-ui .dialog-ux .modal-ux'), 'the authorization dialog');
  // Two sections take the same token: `bearerAuth` and `adminBearerAuth` (administrators'
  // operations); `streamTicket` is left empty. Each gets it, and each must show its "Logout" button afterwards.
  const sections = dialog.locator('.auth-container');
  await waitFor(sections.first(), 'the sections of the authorization dialog');
  const count = await sections.count();
  const names = [];
  for (let i = 0; i < count; i += 1) {
    const section = sections.nth(i);
    const input = section.locator('input');
    if ((await input.count()) === 0) continue;
    const name = ((await section.locator('h4').first().textContent()) || '').trim().split(/\s/)[0];
    // A stream ticket is not the bearer token (it comes from POST .../events/tickets).
    if (name === 'streamTicket') continue;
    names.push(name);
    await input.first().fill(TOKEN);
    await (await waitFor(section.locator('button.authorize, button:has-text("Authorize")'),
      `the "Authorize" button of section ${i}`)).click();
    await waitFor(section.locator('button:has-text("Logout")'), `the "Logout" button of section ${i} (authorization not applied)`);
  }
  if (!names.some((n) => n === 'bearerAuth')) throw new Error(`no bearerAuth section in the dialog: ${names.join(', ')}`);
  await (await waitFor(dialog.locator('button.btn-done, button:has-text("Close")'), 'the "Close" button of the dialog')).click();
  await waitFor(page.locator('.swagger-ui .dialog-ux'), 'the authorization dialog closing', 'detached');
  step('authorized with the bearer token');

  // GET /users/me: found by its path text, not by its tag.
  const operation = page.locator('.swagger-ui .opblock.opblock-get').filter({
    has: page.locator('.opblock-summary-path', { hasText: /\/users\/me$/ }),
  });
  const summary = await waitFor(operation.locator('.opblock-summary'), 'the GET /users/me operation');
  const path = (await operation.first().locator('.opblock-summary-path').innerText()).trim();
  if (!(await operation.first().locator('.opblock-body').isVisible())) await summary.click();
  await (await waitFor(operation.locator('button.try-out__btn'), `the "Try it out" button of GET ${path}`)).click();
  await (await waitFor(operation.locator('button.execute'), `the "Execute" button of GET ${path}`)).click();
  const live = operation.locator('.responses-wrapper .live-responses-table .response');
  const status = await waitFor(live.locator('.response-col_status'), `the server response of GET ${path}`);
  const statusText = (await status.innerText()).trim();
  const body = await waitFor(live.locator('.response-col_description pre'), `the response body of GET ${path}`);
  const bodyText = await body.innerText();
  if (statusText !== '200') {
    fail(`GET ${path} through Swagger UI answered ${statusText}, expected 200; body: ${bodyText.slice(0, 500)}`);
  }
  if (!bodyText.includes(EMAIL)) fail(`the GET ${path} response body does not contain ${EMAIL}: ${bodyText.slice(0, 500)}`);
  step(`GET ${path} via "Try it out" → 200 with ${EMAIL}`);

  // Scroll the response into the middle so the screenshot's viewport-sized parts stay readable.
  await status.scrollIntoViewIfNeeded();
  if (offHost.length > 0) fail(`the page tried to reach hosts other than 127.0.0.1: ${offHost.join(', ')}`);
} catch (error) {
  code = 1;
  console.error(`swagger-ui.mjs: FAILED: ${error instanceof Failure ? error.message : error.stack ?? error}`);
} finally {
  if (page) {
    try {
      await page.screenshot({ path: SCREENSHOT, fullPage: true, timeout: TIMEOUT });
      console.log(`swagger-ui.mjs: screenshot${code ? ' (of the failure)' : ''}: ${SCREENSHOT}`);
    } catch (error) {
      console.error(`swagger-ui.mjs: screenshot failed: ${error.message}`);
      code ||= 1;
    }
  }
  await browser.close();
}
process.exit(code);
