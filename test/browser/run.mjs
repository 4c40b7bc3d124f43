// run.mjs drives the system Chromium (headless) with playwright-core for
// test/e2e/sdk_test.go. It never downloads a browser: it starts the executable
// named by HERALD_CHROMIUM (default /usr/bin/chromium) on a fresh profile.
//
// It reads commands on stdin, one a line, and answers each on stdout:
//   open <url>   load url in a new page, closing the ones before              → "opened <url>"
//   also <url>   load url in one more page, keeping the others open           → "opened <url>"
//   close        close every page                                             → "closed"
//   quit         close the browser and exit                                    → (exit 0)
// It prints "ready" once the browser runs. What the page logs, and its errors, go
// to stderr.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

import { chromium } from 'playwright-core';

const executablePath = process.env.HERALD_CHROMIUM || '/usr/bin/chromium';
const profile = mkdtempSync(join(tmpdir(), 'herald-chromium-'));

const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  // As this machine's notes say: no sandbox (root), no GPU, and nothing that reaches
  // out to the network by itself.
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
  timeout: 30000,
});

let pages = [];

async function closePages() {
  await Promise.all(pages.map((p) => p.close().catch(() => {})));
  pages = [];
}

async function open(url, keep) {
  if (!keep) await closePages();
  const page = await context.newPage();
  pages.push(page);
  page.on('console', (m) => process.stderr.write(`[page ${m.type()}] ${m.text()}\n`));
  page.on('pageerror', (e) => process.stderr.write(`[page error] ${e.stack || e}\n`));
  await page.goto(url, { waitUntil: 'load', timeout: 15000 });
}

async function quit(code) {
  await context.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
  process.exit(code);
}

process.stdout.write('ready\n');
const rl = createInterface({ input: process.stdin });
for await (const line of rl) {
  const [cmd, ...rest] = line.trim().split(' ');
  try {
    if (cmd === 'open' || cmd === 'also') {
      await open(rest.join(' '), cmd === 'also');
      process.stdout.write(`opened ${rest.join(' ')}\n`);
    } else if (cmd === 'close') {
      await closePages();
      process.stdout.write('closed\n');
    } else if (cmd === 'quit') {
      break;
    } else if (cmd) {
      process.stdout.write(`error unknown command ${cmd}\n`);
    }
  } catch (err) {
    process.stdout.write(`error ${String(err.message || err).split('\n')[0]}\n`);
  }
}
await quit(0);
