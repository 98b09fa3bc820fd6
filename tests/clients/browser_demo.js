// The demo page of the local stack in a real headless Chromium (playwright-core,
// Debian's /usr/bin/chromium), driven as a user and a backend would: the page
// connects; a publish through the HTTPS API and a direct message with confirmation
// (the AWS CLI, as the backend identity) show up; a kick mid-stream loses no QoS 1
// message; a forced credential refresh keeps the client ID; a reload resumes the
// same client ID; a second tab gets its own and both stay connected; the page logs
// no console error. Writes a screenshot and prints one JSON summary line.
//
// Usage: node browser_demo.js READY_JSON SCREENSHOT_PNG   (NODE_PATH: playwright-core;
// SW_TOOLS_BIN: the AWS CLI)
'use strict';
const { launch, recorder } = require('./chromium');
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const [readyPath, screenshot] = process.argv.slice(2);
const ready = JSON.parse(fs.readFileSync(readyPath, 'utf8'));
const WAIT = 20000;

function aws(args) {
  const env = {
    ...process.env,
    AWS_ACCESS_KEY_ID: ready.backend.access_key_id,
    AWS_SECRET_ACCESS_KEY: ready.backend.secret_access_key,
    AWS_DEFAULT_REGION: ready.region,
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
  };
  delete env.AWS_SESSION_TOKEN;
  const cli = path.join(process.env.SW_TOOLS_BIN || '', 'aws');
  return new Promise((resolve, reject) => {
    execFile(cli, ['iot-data', ...args, '--endpoint-url', ready.iot_data_endpoint, '--output', 'json'], { env },
      (err, stdout, stderr) => (err ? reject(new Error(`aws ${args[0]}: ${stderr || err.message}`)) : resolve(stdout)));
  });
}

async function connected(page) {
  await page.waitForFunction(() => window.demo && window.demo.client && window.demo.client.state === 'connected', null, { timeout: WAIT });
  return page.evaluate(() => window.demo.client.clientId);
}

async function received(page, text) {
  await page.waitForFunction((t) => window.demo.messages.some((m) => m.text === t), text, { timeout: WAIT });
}

// Every tab's console and, if the run fails, what each tab's demo saw.
const seen = recorder();
const demoState = () => window.demo && ({
  clientId: window.demo.client && window.demo.client.clientId,
  state: window.demo.client && window.demo.client.state,
  messages: window.demo.messages,
  errors: window.demo.errors,
});

async function main() {
  const browser = await launch();
  const summary = { consoleErrors: [] };
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const watch = (page) => {
      page.on('console', (m) => m.type() === 'error' && summary.consoleErrors.push(m.text()));
      page.on('pageerror', (e) => summary.consoleErrors.push(String(e)));
    };
    const page = seen.watch(await context.newPage(), 'first tab');
    watch(page);
    await page.goto(ready.demo_url);
    const id = await connected(page);
    summary.clientId = id;
    const topic = `allowed/${id}`;

    await aws(['publish', '--topic', topic, '--qos', '1', '--payload', 'hello from the backend']);
    await received(page, 'hello from the backend');
    await page.locator('#messages').getByText('hello from the backend').waitFor({ timeout: WAIT });
    summary.published = true;

    const direct = JSON.parse(await aws(['send-direct-message', '--client-id', id, '--topic', topic,
      '--confirmation', '--timeout', '10', '--payload', 'just for this tab']));
    await received(page, 'just for this tab');
    summary.direct = direct.message;

    // A numbered stream with a kick in the middle: every number arrives.
    for (let n = 1; n <= 8; n++) {
      await aws(['publish', '--topic', topic, '--qos', '1', '--payload', `n=${n}`]);
      if (n === 4) await aws(['delete-connection', '--client-id', id]);
    }
    await received(page, 'n=8');
    const numbers = await page.evaluate(() => window.demo.messages.map((m) => m.text).filter((t) => t.startsWith('n=')));
    summary.stream = [...new Set(numbers)];
    summary.afterKick = await connected(page);

    // A forced refresh (a resume) keeps the client ID; the next connect uses it.
    await page.evaluate(() => window.demo.client.refresh());
    summary.afterRefresh = await page.evaluate(() => window.demo.client.clientId);
    await aws(['delete-connection', '--client-id', id]);
    await page.waitForFunction(() => window.demo.client.state !== 'connected', null, { timeout: WAIT }).catch(() => {});
    summary.afterRefreshReconnect = await connected(page);

    // A reload resumes the same client ID (sessionStorage) and its session.
    await page.reload();
    summary.afterReload = await connected(page);

    // A second tab: its own client ID; both stay connected and both receive.
    const second = seen.watch(await context.newPage(), 'second tab');
    watch(second);
    await second.goto(ready.demo_url);
    summary.secondTab = await connected(second);
    await aws(['publish', '--topic', `allowed/${summary.secondTab}`, '--qos', '1', '--payload', 'to the second tab']);
    await aws(['publish', '--topic', topic, '--qos', '1', '--payload', 'to the first tab']);
    await received(second, 'to the second tab');
    await received(page, 'to the first tab');
    summary.bothConnected = (await page.evaluate(() => window.demo.client.state)) === 'connected'
      && (await second.evaluate(() => window.demo.client.state)) === 'connected';
    await page.screenshot({ path: screenshot, fullPage: true });
    summary.errors = await page.evaluate(() => window.demo.errors.map((e) => e.code));
  } catch (e) {
    await seen.report(demoState);
    throw e;
  } finally {
    await browser.close();
  }
  console.log(JSON.stringify(summary));
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : String(err));
  process.exit(1);
});
