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
