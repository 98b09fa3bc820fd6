// Two tabs of the demo page in a real headless Chromium (playwright-core,
// Debian's /usr/bin/chromium), each publishing a chat message to its own
// from/<clientId> with the browser client; an IoT rule hands each to the echo
// function under cargo lambda watch, which replies to that tab only. Prints one
// JSON summary line: each tab's client ID, what it received, console errors.
// If a wait fails, it prints what each tab saw (states since connected, client
// ID, messages, the client's errors) and the pages' console before failing.
//
// Usage: node browser_echo.js READY_JSON   (NODE_PATH: playwright-core)
'use strict';
const { launch, recorder } = require('./chromium');
const fs = require('node:fs');

const [readyPath] = process.argv.slice(2);
const ready = JSON.parse(fs.readFileSync(readyPath, 'utf8'));
const WAIT = 60000;
// The first echo also waits for cargo lambda watch to start the function (`cargo
// run`, which can wait for the build directory's lock); the stack waits for it
// up to --lambda-timeout (900 s), so the test may wait longer than for the rest.
const FIRST_ECHO = 180000;

const seen = recorder();
let tabs = 0;

async function tab(context, errors) {
  const page = seen.watch(await context.newPage(), `tab ${++tabs}`);
  page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(ready.demo_url);
  await page.waitForFunction(() => window.demo && window.demo.client && window.demo.client.state === 'connected', null, { timeout: WAIT });
  const id = await page.evaluate(() => {
    window.statesSeen = [];
    window.demo.client.on('state', (state) => window.statesSeen.push(`${new Date().toISOString()} ${state}`));
    return window.demo.client.clientId;
  });
  return { page, id };
}

/** What a tab saw, for a failure's report. */
const tabState = () => ({
  clientId: window.demo.client && window.demo.client.clientId,
  state: window.demo.client && window.demo.client.state,
  statesSinceConnected: window.statesSeen,
  messages: window.demo.messages,
  errors: window.demo.errors,
});

async function chat(t, text, wait = WAIT) {
  await t.page.evaluate(([id, text]) => window.demo.client.publish(`from/${id}`, JSON.stringify({ kind: 'chat', text })), [t.id, text]);
  const echo = JSON.stringify({ echo: text });
  await t.page.waitForFunction((e) => window.demo.messages.some((m) => m.text === e), echo, { timeout: wait });
}

async function main() {
  const browser = await launch();
  const errors = [];
  try {
    const context = await browser.newContext();
    const first = await tab(context, errors);
    const second = await tab(context, errors);
    await chat(first, 'hi from the first tab', FIRST_ECHO);
    await chat(second, 'hi from the second tab');
    const texts = (t) => t.page.evaluate(() => window.demo.messages.map((m) => m.text));
    console.log(JSON.stringify({
      ids: [first.id, second.id],
      first: await texts(first),
      second: await texts(second),
      consoleErrors: errors,
    }));
  } catch (e) {
    await seen.report(tabState);
    throw e;
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
