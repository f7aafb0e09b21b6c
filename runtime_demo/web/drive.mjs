// Drive the real page in headless Chromium (playwright-core, the system's browser: no download), as a
// user would: open ?model=..., type each history, press Recommend, read the JSON line it shows.
//
//   node drive.mjs --url http://127.0.0.1:PORT/ --model build/model.int8.onnx --histories FILE.jsonl
//                  --out answers.json [--screenshot page.png] [--chromium /usr/bin/chromium]
//
// FILE.jsonl: one JSON list of original ids per line. answers.json: {"answers": [json line, ...],
// "shown": [[list item text, ...], ...], "load_ms": ..., "request_ms": [...], "page_ms": [...]}:
// shown is what the page rendered for each history; request_ms from the click to the rendered
// answer (includes the driver's round trips), page_ms the page's own timing of the request
// (performance.now(), which Chromium coarsens to 0.1 ms on a page that is not cross-origin isolated).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const TIMEOUT_MS = 60000;

function parseArgs(argv) {
  const args = { chromium: '/usr/bin/chromium' };
  for (let i = 0; i < argv.length; i += 2) args[argv[i].replace(/^--/, '')] = argv[i + 1];
  for (const name of ['url', 'model', 'histories', 'out']) {
    if (!args[name]) throw new Error(`--${name} is required`);
  }
  return args;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const histories = readFileSync(args.histories, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l));
  const profile = mkdtempSync(join(tmpdir(), 'chromium-')); // a fresh --user-data-dir each run
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: args.chromium, headless: true, args: FLAGS, timeout: TIMEOUT_MS,
  });
  try {
    const page = context.pages()[0] || await context.newPage();
    const console = [];
    page.on('console', (m) => { if (m.type() === 'error') console.push(m.text()); });
    const start = Date.now();
    await page.goto(`${args.url}?model=${encodeURIComponent(args.model)}`, { timeout: TIMEOUT_MS });
    await page.waitForFunction(() => document.body.dataset.state !== 'loading', null, { timeout: TIMEOUT_MS });
    const loadMs = Date.now() - start;
    const state = await page.evaluate(() => document.body.dataset.state);
    if (state !== 'ready') throw new Error(`page: ${await page.textContent('#error')} ${console.join(' | ')}`);
    const answers = [];
    const requestMs = [];
    const pageMs = [];
    const shown = [];
    for (const history of histories) {
      const answered = Number(await page.evaluate(() => document.body.dataset.answered));
      await page.fill('#history', history.join(','));
      const t = Date.now();
      await page.click('#go');
      await page.waitForFunction((n) => Number(document.body.dataset.answered) > n, answered, { timeout: TIMEOUT_MS });
      requestMs.push(Date.now() - t);
      if (await page.evaluate(() => document.body.dataset.state) !== 'ready') {
        throw new Error(`page: ${await page.textContent('#error')}`);
      }
      answers.push(await page.textContent('#json'));
      pageMs.push(Number(await page.evaluate(() => document.body.dataset.requestMs)));
      shown.push(await page.$$eval('#results li', (lis) => lis.map((li) => li.textContent)));
    }
    if (args.screenshot) await page.screenshot({ path: args.screenshot, fullPage: true });
    writeFileSync(args.out, JSON.stringify({ answers, shown, load_ms: loadMs, request_ms: requestMs, page_ms: pageMs }));
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

main().catch((e) => { process.stderr.write(`error: ${e.message.split('\n')[0]}\n`); process.exitCode = 1; });
