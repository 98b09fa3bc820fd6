// The browser client's token mode in a real headless Chromium: a page on the
// local stack's origin imports /client.js and connects with
// connect({ url, authorizer, token }) — no vending API, no AWS keys — through the
// stack's JWT custom authorizer. A push from the backend (AWS CLI, HTTPS data
// plane) arrives; a reload keeps the tab's client ID; a second tab gets its own
// and both stay connected; the page logs no console error. Prints one JSON
// summary line.
//
// Usage: node browser_token.js READY_JSON TOKEN   (NODE_PATH: playwright-core;
// SW_TOOLS_BIN: the AWS CLI)
'use strict';
const { launch, recorder } = require('./chromium');
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const [readyPath, token] = process.argv.slice(2);
const ready = JSON.parse(fs.readFileSync(readyPath, 'utf8'));
const WAIT = 20000;

function publish(topic, payload) {
  const env = {
    ...process.env,
    AWS_ACCESS_KEY_ID: ready.backend.access_key_id,
    AWS_SECRET_ACCESS_KEY: ready.backend.secret_access_key,
    AWS_DEFAULT_REGION: ready.region,
    AWS_CONFIG_FILE: '/dev/null',
    AWS_SHARED_CREDENTIALS_FILE: '/dev/null',
  };
  const cli = path.join(process.env.SW_TOOLS_BIN || '', 'aws');
  const args = ['iot-data', 'publish', '--topic', topic, '--payload', payload, '--endpoint-url', ready.iot_data_endpoint];
  return new Promise((resolve, reject) => {
    execFile(cli, args, { env }, (err, _out, stderr) => (err ? reject(new Error(stderr || err.message)) : resolve()));
  });
}

// Every tab's console and, if the run fails, each tab's client and messages.
const seen = recorder();
const clientState = () => window.client && ({
  clientId: window.client.clientId,
  state: window.client.state,
  messages: window.messages,
});
let tabs = 0;

/** Opens a tab on the stack's origin whose script connects in token mode. */
async function tab(context, errors) {
  const page = seen.watch(await context.newPage(), `tab ${++tabs}`);
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  page.on('pageerror', (e) => errors.push(String(e)));
  return load(page);
}

/** (Re)loads the page in `page`'s tab and connects in token mode. */
async function load(page) {
  await page.goto(ready.demo_url.replace(/\/demo$/, '/client.js'));
  await page.evaluate(async ({ url, authorizer, token }) => {
    const { connect } = await import('/client.js');
    window.messages = [];
    window.client = connect({ url, authorizer, token, topics: ['allowed/{clientId}'] });
    window.client.on('message', (m) => window.messages.push(m.text));
  }, { url: ready.iot_endpoint, authorizer: ready.authorizer.name, token });
  await page.waitForFunction(() => window.client.state === 'connected', null, { timeout: WAIT });
  return page;
}

async function main() {
  const browser = await launch();
  const errors = [];
  const summary = {};
  try {
    const context = await browser.newContext();
    // The page is the bundle itself: no favicon to ask for.
    await context.route('**/favicon.ico', (route) => route.fulfill({ status: 204 }));
    const page = await tab(context, errors);
    summary.clientId = await page.evaluate(() => window.client.clientId);
    await publish(`allowed/${summary.clientId}`, 'hello token');
    await page.waitForFunction(() => window.messages.includes('hello token'), null, { timeout: WAIT });
    summary.received = true;
    await load(page);
    summary.afterReload = await page.evaluate(() => window.client.clientId);
    const second = await tab(context, errors);
    summary.secondTab = await second.evaluate(() => window.client.clientId);
    summary.bothConnected = (await page.evaluate(() => window.client.state)) === 'connected'
      && (await second.evaluate(() => window.client.state)) === 'connected';
  } catch (e) {
    await seen.report(clientState);
    throw e;
  } finally {
    summary.consoleErrors = errors;
    await browser.close();
  }
  console.log(JSON.stringify(summary));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
