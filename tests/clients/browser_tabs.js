// Tabs that do not fight, in a real headless Chromium: a page (same origin as
// the vending API) starts two clients; a second tab opened from it with
// window.open, which copies its sessionStorage and with it the resume tokens,
// starts one more. Every client must connect under its own client ID with no
// reconnect. Then: a topic the credentials do not grant fails as Forbidden
// naming it, and a page on another origin imports /client.js. Prints one JSON
// summary line.
//
// Usage: node browser_tabs.js READY_JSON   (NODE_PATH: playwright-core)
'use strict';
const { launch, recorder } = require('./chromium');
const fs = require('node:fs');
const http = require('node:http');

const [readyPath] = process.argv.slice(2);
const ready = JSON.parse(fs.readFileSync(readyPath, 'utf8'));
const api = ready.api_url;
const origin = new URL(api).origin;
const WAIT = 30000;
// How long every client is watched, connected, for a takeover: a loop showed
// up within 250 ms (about four reconnects a second).
const WATCH_MS = 1500;

/** Starts `count` clients in `page`; their client IDs once all are connected. */
async function start(page, count) {
  await page.evaluate(async ([origin, api, count]) => {
    const { connect } = await import(`${origin}/client.js`);
    window.clients = window.clients || [];
    window.history_ = window.history_ || [];
    for (let i = 0; i < count; i++) {
      const client = connect({ credentialsUrl: api });
      const n = window.clients.length;
      client.on('state', (s) => window.history_.push([n, s]));
      window.clients.push(client);
    }
  }, [origin, api, count]);
  await page.waitForFunction(() => window.clients.every((c) => c.state === 'connected'), null, { timeout: WAIT });
  return page.evaluate(() => window.clients.map((c) => c.clientId));
}

const history = (page) => page.evaluate(() => window.history_);

// Every page's console and, if the run fails, each page's clients and their states.
const seen = recorder();
const clientsState = () => ({
  clients: (window.clients || []).map((c) => ({ clientId: c.clientId, state: c.state })),
  history: window.history_,
});

async function main() {
  const browser = await launch();
  const errors = [];
  const other = http.createServer((_, res) => res.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>another origin</title>'));
  await new Promise((resolve) => other.listen(0, '127.0.0.1', resolve));
  try {
    const context = await browser.newContext();
    const first = seen.watch(await context.newPage(), 'first tab');
    first.on('pageerror', (e) => errors.push(String(e)));
    await first.goto(`${origin}/health`);
    const firstIds = await start(first, 2);
    // The second tab, opened from the first: same origin, a copy of its sessionStorage.
    const [second] = await Promise.all([
      context.waitForEvent('page'),
      first.evaluate((url) => window.open(url), `${origin}/health`),
    ]);
    seen.watch(second, 'second tab');
    await second.waitForLoadState();
    second.on('pageerror', (e) => errors.push(String(e)));
    const copied = await second.evaluate(() => Object.keys(sessionStorage).length);
    const secondIds = await start(second, 1);
    // Watched for a while, every client connected and none reconnecting.
    await first.waitForTimeout(WATCH_MS);
    const states = await Promise.all([first, second].map((p) => p.evaluate(() => window.clients.map((c) => c.state))));

    // A topic the credentials do not grant.
    const refused = await first.evaluate(async (api) => {
      const { connect } = await import('/client.js');
      const client = connect({ credentialsUrl: api, topics: ['not/granted'] });
      return new Promise((resolve) => client.on('error', (e) => resolve({ code: e.code, message: e.message })));
    }, api);

    // A page on another origin imports the client.
    const foreign = await context.newPage();
    await foreign.goto(`http://127.0.0.1:${other.address().port}/`);
    const imported = await foreign.evaluate(async (origin) => {
      const module = await import(`${origin}/client.js`);
      return typeof module.connect;
    }, origin);

    console.log(JSON.stringify({
      firstIds,
      secondIds,
      copied,
      states,
      history: [await history(first), await history(second)],
      refused,
      imported,
      errors,
    }));
  } catch (e) {
    await seen.report(clientsState);
    throw e;
  } finally {
    await browser.close();
    other.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
