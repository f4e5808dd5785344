// Drives the dbwarden dashboard in Debian's headless Chromium with
// playwright-core. Run by tests/browser.rs:
//
//   node dashboard.mjs <dashboard-url> <admin-token> <artifact-dir>
//
// Exits 0 when every step passed, 1 with the failing step otherwise.
import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [url, token, artifacts] = process.argv.slice(2);
if (!url || !token || !artifacts) {
  console.error('usage: node dashboard.mjs <dashboard-url> <admin-token> <artifact-dir>');
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });
const executablePath = process.env.DBWARDEN_CHROMIUM || '/usr/bin/chromium';
const base = url.endsWith('/') ? url : url + '/';
const WIDGETS = ['health', 'alerts', 'requests', 'pool', 'sessions', 'queries', 'errors', 'resources', 'cleanup', 'trends'];

let step = 'start';
const log = (message) => console.log(`[browser] ${message}`);
function expect(condition, message) {
  if (!condition) throw new Error(message);
}

/** The elements that stick out past the right edge of the viewport. */
function wideElements(page) {
  return page.evaluate(() => {
    const out = [];
    for (const el of document.querySelectorAll('body *')) {
      const r = el.getBoundingClientRect();
      if (r.right > window.innerWidth + 1 && r.width > 0) {
        const inScroller = el.closest('.table-wrap') && el.closest('.table-wrap') !== el;
        if (!inScroller) out.push(`${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}${el.className && typeof el.className === 'string' ? '.' + el.className.split(' ').join('.') : ''} right=${Math.round(r.right)}`);
      }
    }
    return out.slice(0, 12).join(', ');
  });
}

async function waitFor(what, fn, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}${last instanceof Error ? ': ' + last.message : ''}`);
}

const profile = mkdtempSync(join(tmpdir(), 'dbwarden-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  viewport: { width: 1280, height: 900 },
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});

const problems = [];
let exitCode = 0;
try {
  const page = context.pages()[0] || (await context.newPage());
  page.on('pageerror', (e) => problems.push('page error: ' + e.message));
  page.on('console', (m) => {
    // Chromium logs every non-2xx response as a console error; two are
    // expected here: the wrong token's 401, and /health's 503 while the
    // verdict is fail (a busy test machine can make the host-CPU check fail).
    // Anything else (a script error, a refused load under the CSP) counts.
    const expected = /Failed to load resource: the server responded with a status of (401|503)|net::ERR_ABORTED/;
    if (m.type() === 'error' && !expected.test(m.text())) problems.push('console error: ' + m.text());
  });

  step = 'sign-in page';
  const first = await page.goto(url);
  expect(first.status() === 200, `GET ${url} answered ${first.status()}`);
  const csp = first.headers()['content-security-policy'] || '';
  expect(csp.includes("script-src 'self'"), 'no Content-Security-Policy on the page');
  await page.locator('#signin').waitFor({ state: 'visible' });
  expect(await page.locator('#app').isHidden(), 'the dashboard shows before signing in');

  step = 'wrong token';
  await page.fill('#token', 'this-is-not-the-admin-token');
  await page.click('#signin-submit');
  await page.locator('#signin-error').waitFor({ state: 'visible' });
  expect(/not valid/i.test(await page.locator('#signin-error').innerText()), 'no message for a wrong token');

  step = 'sign in';
  await page.fill('#token', token);
  await page.keyboard.press('Enter');
  await page.locator('#app').waitFor({ state: 'visible' });
  const cookies = await context.cookies();
  const session = cookies.find((c) => c.name === 'dbwarden_session');
  expect(session && session.httpOnly && session.sameSite === 'Strict', 'no HttpOnly SameSite=Strict session cookie');
  expect(!(await page.evaluate(() => document.cookie)).includes('dbwarden_session'), 'scripts can read the session cookie');
  log('signed in');

  step = 'every widget';
  for (const w of WIDGETS) {
    await page.locator(`[data-widget="${w}"]`).waitFor({ state: 'visible' });
  }
  await waitFor('the first figures', async () => (await page.locator('#kpi-qps').innerText()) !== '–');
  await waitFor('a route in the requests table', async () => (await page.locator('#routes tr[data-route="/authors/{id}"]').count()) > 0);
  await waitFor('a statement in the queries table', async () => /SELECT/.test(await page.locator('#queries-top-body').innerText()));
  await waitFor('a pool sample', async () => /In use/.test(await page.locator('#pool-stats').innerText()));
  await waitFor('the resources', async () => /CPU/.test(await page.locator('#resources').innerText()));
  await waitFor('the cleanup run', async () => /1,280/.test(await page.locator('#cleanup-stats').innerText()));
  await waitFor('an N+1 finding', async () => /books/.test(await page.locator('#n-plus-one').innerText()));
  await waitFor('live updates', async () => (await page.locator('#live-text').innerText()) === 'Live', 20000);
  for (const w of WIDGETS) {
    const text = (await page.locator(`[data-widget="${w}"]`).innerText()).trim();
    expect(text.length > 20, `the ${w} widget is empty`);
  }
  log('every widget shows');

  step = 'figures change without a reload';
  await page.evaluate(() => (window.__dbwardenNoReload = true));
  const routeRequests = () => page.locator('#routes tr[data-route="/authors/{id}"] td:nth-child(2)').innerText();
  const statements = () => page.locator('#query-stats').innerText();
  const before = { requests: await routeRequests(), statements: await statements() };
  await waitFor(
    'the request count to change',
    async () => (await routeRequests()) !== before.requests && (await statements()) !== before.statements,
    30000,
  );
  expect(await page.evaluate(() => window.__dbwardenNoReload === true), 'the page reloaded');
  log(`requests for /authors/{id}: ${before.requests} -> ${await routeRequests()}`);

  step = 'a checkout in the live table';
  await waitFor('a held connection in the checkout table', async () => /\/reports\/\{id\}/.test(await page.locator('#checkouts').innerText()), 30000);

  step = 'raise an alert';
  const put = await fetch(base + 'api/config', {
    method: 'PUT',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ thresholds: { slow_query: 0.000001 } }),
  });
  expect(put.ok, `PUT api/config answered ${put.status}: ${await put.text()}`);
  // Every statement is now slow: the slow_queries rule fires at the next tick.
  const alert = page.locator('#alerts-active li.alert[data-rule="slow_queries"][data-acknowledged="false"]').first();
  await alert.waitFor({ state: 'visible', timeout: 30000 });
  const alertId = await alert.getAttribute('data-alert-id');
  log(`alert ${alertId} is shown: ${(await alert.locator('.alert-msg').innerText()).slice(0, 100)}`);

  step = 'acknowledge it';
  const ack = page.locator(`#alerts-active li[data-alert-id="${alertId}"] button[data-action="ack"]`);
  // Keyboard first: the button is focusable and answers Enter.
  await ack.focus();
  expect(await ack.evaluate((b) => b === document.activeElement), 'the Acknowledge button cannot take focus');
  await page.keyboard.press('Enter');
  const acked = page.locator(`#alerts-active li[data-alert-id="${alertId}"][data-acknowledged="true"]`);
  await acked.waitFor({ state: 'visible', timeout: 15000 });
  const ackText = await acked.locator('[data-role="acknowledged"]').innerText();
  expect(/Acknowledged by/.test(ackText), 'no acknowledgement shown');
  expect((await page.locator(`#alerts-active li[data-alert-id="${alertId}"] button[data-action="ack"]`).count()) === 0, 'the Acknowledge button is still offered');
  log(`acknowledged: ${ackText}`);

  step = 'the silence dialog';
  await page.locator(`#alerts-active li[data-alert-id="${alertId}"] button[data-action="silence"]`).click();
  await page.locator('#silence-dialog').waitFor({ state: 'visible' });
  await page.keyboard.press('Escape');
  await page.locator('#silence-dialog').waitFor({ state: 'hidden' });

  step = 'screenshot at 1280 px';
  // Let one more refresh land and the notices fade, so the picture is settled.
  await page.waitForTimeout(3000);
  await page.locator('#toast').waitFor({ state: 'hidden', timeout: 10000 });
  await page.screenshot({ path: join(artifacts, 'dashboard.png'), fullPage: true });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(overflow <= 1, `the page scrolls sideways by ${overflow} px at 1280 px: ${await wideElements(page)}`);

  step = 'narrow screen';
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(800);
  const narrowOverflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(narrowOverflow <= 1, `the page scrolls sideways by ${narrowOverflow} px at 390 px: ${await wideElements(page)}`);
  await page.screenshot({ path: join(artifacts, 'dashboard-narrow.png') });
  await page.locator('#w-requests').screenshot({ path: join(artifacts, 'dashboard-narrow-requests.png') });

  step = 'console';
  expect(problems.length === 0, 'the page reported problems:\n  ' + problems.join('\n  '));
  log('all steps passed');
} catch (e) {
  exitCode = 1;
  console.error(`[browser] FAILED at step "${step}": ${e.message}`);
  if (problems.length) console.error('[browser] page problems:\n  ' + problems.join('\n  '));
  try {
    const page = context.pages()[0];
    if (page) await page.screenshot({ path: join(artifacts, 'dashboard-failure.png'), fullPage: true });
  } catch (_) {
    /* the failure above is what matters */
  }
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(exitCode);
