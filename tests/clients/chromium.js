// Debian's /usr/bin/chromium, headless, driven by playwright-core, with the flags
// that keep it off the network (a closed network refuses its background calls).
'use strict';
const { chromium } = require('playwright-core');

exports.launch = () => chromium.launch({
  executablePath: '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run'],
});

// What the pages saw, for a failed run: each page's `state` (a function
// evaluated in the page) and every console line of every page, in order.
exports.recorder = () => {
  const pages = [];
  const consoleLines = [];
  return {
    /** Records `page`'s console under `who`; returns the page. */
    watch(page, who) {
      pages.push({ page, who });
      page.on('console', (m) => consoleLines.push(`${new Date().toISOString()} ${who} ${m.type()}: ${m.text()}`));
      page.on('pageerror', (e) => consoleLines.push(`${new Date().toISOString()} ${who} pageerror: ${e}`));
      return page;
    },
    /** Prints the report to stderr. */
    async report(state) {
      const seen = {};
      for (const { page, who } of pages) {
        seen[who] = await page.evaluate(state).catch((e) => String(e));
      }
      console.error(JSON.stringify({ at: new Date().toISOString(), pages: seen, console: consoleLines }, null, 1));
    },
  };
};
