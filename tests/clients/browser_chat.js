// The chat example end to end in a real headless Chromium: the page
// backend-example/chat/index.html (served here from the repository's root) in
// one browser context per user, the browser client vending credentials with the
// user's JWT narrowed to the rooms on screen, the chat function under cargo
// lambda watch behind the rules. Alice is in rooms 42 and 7, Bob in 42, Carol in
// 7. They chat; Carol asks for room 42, which her token does not carry; then the
// operator bans Bob with `serverless-websockets ban`. Prints one JSON summary.
//
// Usage: node browser_chat.js READY_JSON PORT TOKENS_JSON BAN_BINARY
//   (NODE_PATH: playwright-core; TOKENS_JSON: {"alice": "<jwt>", …})
'use strict';
const { launch, recorder } = require('./chromium');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { execFile } = require('node:child_process');

const [readyPath, port, tokensPath, banBinary] = process.argv.slice(2);
const ready = JSON.parse(fs.readFileSync(readyPath, 'utf8'));
const tokens = JSON.parse(fs.readFileSync(tokensPath, 'utf8'));
const ROOT = path.resolve(__dirname, '..', '..');
const PAGE = '/backend-example/chat/index.html';
const FILES = { [PAGE]: 'text/html', '/web/dist/serverless-websockets.js': 'text/javascript' };
const WAIT = 60000;
// The first invocation also waits for cargo lambda watch to start the function
// (`cargo run`, which can wait for the build directory's lock); the stack waits
// for it up to --lambda-timeout (900 s), so the test may wait longer for it.
const FIRST_INVOCATION = 180000;

function serve() {
  const server = http.createServer((request, response) => {
    const type = FILES[request.url];
    if (!type) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { 'content-type': type }).end(fs.readFileSync(path.join(ROOT, request.url)));
  });
  return new Promise((resolve) => server.listen(Number(port), '127.0.0.1', () => resolve(server)));
}

// Every page's console and, if the run fails, what each page's chat saw.
const seen = recorder();
const chatState = () => window.chat && ({
  state: window.chat.client && window.chat.client.state,
  joined: window.chat.joined,
  messages: window.chat.messages,
  errors: window.chat.errors,
});

async function enter(browser, who, rooms, errors) {
  const context = await browser.newContext();
  const page = seen.watch(await context.newPage(), `${who} (${rooms})`);
  page.on('console', (m) => m.type() === 'error' && errors.push(`${who}: ${m.text()}`));
  page.on('pageerror', (e) => errors.push(`${who}: ${e}`));
  await page.goto(`http://127.0.0.1:${port}${PAGE}`);
  await page.fill('#api', ready.api_url);
  await page.fill('#token', tokens[who]);
  await page.fill('#rooms', rooms);
  await page.click('#login button');
  return page;
}

const joined = (page, count, wait = WAIT) =>
  page.waitForFunction((n) => window.chat.joined.length === n, count, { timeout: wait });

async function say(page, room, text) {
  await page.selectOption('#room', room);
  await page.fill('#text', text);
  await page.click('#say button');
}

const heard = (page, text) =>
  page.waitForFunction((t) => window.chat.messages.some((m) => m.type === 'message' && m.text === t), text, { timeout: WAIT });

const messages = (page) => page.evaluate(() => window.chat.messages);

function ban(sub) {
  const env = {
    ...process.env,
    AWS_ACCESS_KEY_ID: ready.admin.access_key_id,
    AWS_SECRET_ACCESS_KEY: ready.admin.secret_access_key,
    AWS_REGION: ready.region,
  };
  const args = ['ban', sub, '--presence-prefix', 'chat/presence/',
    '--iam-endpoint-url', ready.sts_endpoint, '--iot-endpoint-url', ready.iot_data_endpoint];
  return new Promise((resolve, reject) =>
    execFile(banBinary, args, { env }, (err, stdout, stderr) => (err ? reject(new Error(`${err}: ${stderr}`)) : resolve(JSON.parse(stdout)))));
}

async function main() {
  const server = await serve();
  const browser = await launch();
  const errors = [];
  try {
    const alice = await enter(browser, 'alice', '42,7', errors);
    await joined(alice, 2, FIRST_INVOCATION);
    const bob = await enter(browser, 'bob', '42', errors);
    const carol = await enter(browser, 'carol', '7', errors);
    await Promise.all([joined(bob, 1), joined(carol, 1)]);

    await say(alice, '42', 'hello room 42');
    await Promise.all([heard(alice, 'hello room 42'), heard(bob, 'hello room 42')]);
    await say(carol, '7', 'hello room 7');
    await Promise.all([heard(alice, 'hello room 7'), heard(carol, 'hello room 7')]);
    await say(bob, '42', 'hi alice');
    await heard(alice, 'hi alice');

    // Carol asks for a room her token does not carry.
    const intruder = await enter(browser, 'carol', '42', errors.slice());
    await intruder.waitForFunction(() => window.chat.client && window.chat.client.state === 'failed', null, { timeout: WAIT })
      .catch(async (e) => { throw new Error(`${e}: ${JSON.stringify(await intruder.evaluate(() => ({ state: window.chat.client && window.chat.client.state, errors: window.chat.errors, text: document.getElementById('errors').textContent })))}`); });
    const intruderErrors = await intruder.evaluate(() => window.chat.errors);
    const intruderText = await intruder.textContent('#errors');

    // The operator bans Bob: how long until his page is out and Alice is told.
    const started = Date.now();
    const report = await ban('bob');
    await bob.waitForFunction(() => window.chat.client.state === 'failed', null, { timeout: WAIT });
    const bobOutMs = Date.now() - started;
    await alice.waitForFunction(() => window.chat.messages.some((m) => m.type === 'left' && m.from === 'bob'), null, { timeout: WAIT });
    const aliceToldMs = Date.now() - started;
    await say(alice, '42', 'after the ban');
    await heard(alice, 'after the ban');

    console.log(JSON.stringify({
      alice: await messages(alice),
      bob: await messages(bob),
      carol: await messages(carol),
      bobErrors: await bob.evaluate(() => window.chat.errors),
      bobText: await bob.textContent('#errors'),
      intruderErrors,
      intruderText,
      banReport: report,
      bobOutMs,
      aliceToldMs,
      consoleErrors: errors,
    }));
  } catch (e) {
    await seen.report(chatState);
    throw e;
  } finally {
    await browser.close();
    server.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
