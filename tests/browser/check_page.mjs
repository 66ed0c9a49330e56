// Open a page in Debian's Chromium and wait until every expected text is visible on it.
//
//   node check_page.mjs <url> <screenshot.png> <expected text>... [!<absent text>...]
//
// A text counts as found when some visible element's whole text is exactly that text
// (case-sensitive, whitespace trimmed): "preprocess=none" is not found in a run named
// "sweep preprocess=none,log", nor "1.9" in "1.928". A text written with a leading "!" must
// NOT be visible once all the others are (e.g. a run a filter should leave out).
//
// Exits 0 once all the texts are found (within 60 s), after saving a screenshot of the
// 1920x1000 viewport; otherwise it saves the screenshot anyway, prints what was missing
// (or present) and the start of the page's text, and exits 1. Used by tests/test_dashboard.py.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [url, screenshot, ...texts] = process.argv.slice(2);
const expected = texts.filter((t) => !t.startsWith('!'));
const absent = texts.filter((t) => t.startsWith('!')).map((t) => t.slice(1));
if (!url || !screenshot || expected.length === 0) {
  console.error('usage: node check_page.mjs <url> <screenshot.png> <expected text>... [!<absent text>...]');
  process.exit(2);
}
const TIMEOUT_MS = 60_000;

// A fresh, empty profile each time: no saved UI state (MLflow keeps the runs table's
// columns in localStorage) carried from one check to the next.
const profile = mkdtempSync(join(tmpdir(), 'check-page-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: '/usr/bin/chromium',
  headless: true,
  viewport: { width: 1920, height: 1000 },
  // Running as root on a machine with no network: no sandbox, no GPU, and none of the
  // calls Chromium makes on its own (updates, sync, QUIC probes).
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync'],
});
const visible = (page, text) =>
  page.getByText(text, { exact: true }).first().isVisible().catch(() => false);
let missing = expected;
let present = [];
try {
  const page = context.pages()[0] ?? await context.newPage();
  await page.goto(url, { waitUntil: 'domcontentloaded', timeout: TIMEOUT_MS });
  const deadline = Date.now() + TIMEOUT_MS;
  // The UI is a React app that fetches its data after loading and renders its tables
  // lazily: poll until each text is visible, instead of sleeping a fixed time. Visible
  // means rendered with a size, not necessarily scrolled into the viewport.
  while (true) {
    const found = await Promise.all(missing.map((text) => visible(page, text)));
    missing = missing.filter((_, i) => !found[i]);
    if (missing.length === 0 || Date.now() > deadline) break;
    await page.waitForTimeout(250);
  }
  // Checked once, when the expected texts are there: the data they come with has loaded.
  if (missing.length === 0) {
    const shown = await Promise.all(absent.map((text) => visible(page, text)));
    present = absent.filter((_, i) => shown[i]);
  }
  await page.screenshot({ path: screenshot });
  if (missing.length > 0 || present.length > 0) {
    console.error(`on ${url}:`);
    for (const text of missing) console.error(`  not visible after ${TIMEOUT_MS / 1000} s: ${JSON.stringify(text)}`);
    for (const text of present) console.error(`  visible but should not be: ${JSON.stringify(text)}`);
    const body = await page.evaluate(() => document.body.innerText);
    console.error(`--- the page's text (start) ---\n${body.slice(0, 3000)}`);
  }
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(missing.length === 0 && present.length === 0 ? 0 : 1);
