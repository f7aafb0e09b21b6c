// Measure an .onnx where a browser profile runs it: onnxruntime-web's wasm backend (1 thread) in
// headless Chromium (playwright-core, the system's browser). The profiler (toolkit/profiler/clients.py) calls
// it for a browser profile; the page is served from memory by the driver (no server, no network).
//
//   node bench.mjs --model FILE.onnx --histories ROWS.json --runs N [--warmup W] [--chromium PATH]
//
// ROWS.json: a JSON list of history rows, each the model's input row (L item indices, left-padded
// with 0). Output: one JSON object on stdout: samples_ms (each timed session.run, performance.now()
// on a cross-origin isolated page: microsecond resolution), items (the answer to each row, once),
// wasm_memory_bytes (onnxruntime-web's WebAssembly linear memory after serving: it only grows, so
// this is its peak: the model, the runtime's arena and activations), renderer_peak_rss_bytes (VmHWM
// of the page's renderer process: Blink and V8 included), runtime_version. Errors: one line, exit 1.
import { readFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = dirname(fileURLToPath(import.meta.url));
const ORT_DIST = join(HERE, 'node_modules', 'onnxruntime-web', 'dist');
const ORIGIN = 'http://localhost:9';  // intercepted, never reached; localhost is a secure context (isolation)
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-renderer-backgrounding',
  '--disable-background-timer-throttling'];
const TIMEOUT_MS = 120000;
const TYPES = { '.mjs': 'text/javascript', '.js': 'text/javascript', '.wasm': 'application/wasm',
  '.html': 'text/html', '.onnx': 'application/octet-stream' };
// isolated: a fine performance.now() (Chromium coarsens it to 100 us otherwise); ORT is still held to 1 thread
const ISOLATION = { 'Cross-Origin-Opener-Policy': 'same-origin', 'Cross-Origin-Embedder-Policy': 'require-corp' };

// The page: onnxruntime-web's wasm-only bundle, the documented API (env.wasm, InferenceSession, Tensor).
// WebAssembly.instantiate* are wrapped first so that the runtime's linear memory can be read afterwards.
const PAGE = `<!doctype html><meta charset="utf-8"><script type="module">
const memories = [];
const Memory = WebAssembly.Memory;  // a memory the runtime creates itself (a threaded build imports one)
WebAssembly.Memory = new Proxy(Memory, { construct(target, args) { const m = new target(...args); memories.push(m); return m; } });
function keep(result) {
  const instance = result.instance || result;
  for (const value of Object.values(instance.exports || {})) if (value instanceof Memory && !memories.includes(value)) memories.push(value);
  return result;
}
for (const name of ['instantiate', 'instantiateStreaming']) {
  const original = WebAssembly[name];
  WebAssembly[name] = (...args) => original.apply(WebAssembly, args).then(keep);
}
const ort = await import('/ort/ort.wasm.min.mjs');
window.bench = async (rows, runs, warmup) => {
  ort.env.wasm.wasmPaths = '${ORIGIN}/ort/';
  ort.env.wasm.numThreads = 1;
  const session = await ort.InferenceSession.create('/model.onnx', { executionProviders: ['wasm'] });
  const length = rows[0].length;
  const tensors = rows.map((row) => new ort.Tensor('int64', BigInt64Array.from(row.map(BigInt)), [1, length]));
  const items = [];
  for (const t of tensors) items.push(Array.from((await session.run({ history: t })).items.data, Number));
  for (let r = 0; r < warmup; ++r) await session.run({ history: tensors[r % tensors.length] });
  const samples = [];
  for (let r = 0; r < runs; ++r) {
    const start = performance.now();
    await session.run({ history: tensors[r % tensors.length] });
    samples.push(performance.now() - start);
  }
  const wasm = memories.reduce((sum, m) => sum + m.buffer.byteLength, 0);
  return { samples_ms: samples, items, wasm_memory_bytes: wasm, runtime_version: ort.env.versions.web,
           isolated: self.crossOriginIsolated };
};
document.body.dataset.state = 'ready';
</script><body data-state="loading"></body>`;

function parseArgs(argv) {
  const args = { chromium: '/usr/bin/chromium', warmup: '50' };
  for (let i = 0; i < argv.length; i += 2) args[argv[i].replace(/^--/, '')] = argv[i + 1];
  for (const name of ['model', 'histories', 'runs']) if (!args[name]) throw new Error(`--${name} is required`);
  return args;
}

// VmHWM of every renderer process under this one (Linux /proc), the largest: the page's process.
function rendererPeakRss() {
  const parents = new Map();
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      parents.set(pid, stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    } catch { /* gone */ }
  }
  const mine = (pid) => { for (let p = pid; p && p !== '1'; p = parents.get(p)) if (p === String(process.pid)) return true; return false; };
  let peak = 0;
  for (const pid of parents.keys()) {
    if (pid === String(process.pid) || !mine(pid)) continue;
    try {
      if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('--type=renderer')) continue;
      const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (hwm) peak = Math.max(peak, Number(hwm[1]) * 1024);
    } catch { /* gone */ }
  }
  return peak;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const rows = JSON.parse(readFileSync(args.histories, 'utf8'));
  const model = readFileSync(args.model);
  const profile = mkdtempSync(join(tmpdir(), 'chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: args.chromium, headless: true, args: FLAGS, timeout: TIMEOUT_MS,
  });
  try {
    await context.route(`${ORIGIN}/**`, (route) => {
      const path = new URL(route.request().url()).pathname;
      const body = path === '/' ? Buffer.from(PAGE) : path === '/model.onnx' ? model
        : path.startsWith('/ort/') && !path.includes('..') ? readFileSync(join(ORT_DIST, path.slice(5))) : null;
      if (body === null) return route.fulfill({ status: 404, body: '' });
      const type = TYPES[path === '/' ? '.html' : path.slice(path.lastIndexOf('.'))] || 'application/octet-stream';
      return route.fulfill({ status: 200, body, headers: { 'Content-Type': type, ...ISOLATION } });
    });
    const page = context.pages()[0] || await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(e.message));
    await page.goto(`${ORIGIN}/`, { timeout: TIMEOUT_MS });
    await page.waitForFunction(() => document.body.dataset.state === 'ready', null, { timeout: TIMEOUT_MS })
      .catch(() => { throw new Error(`page did not load: ${errors.join(' | ')}`); });
    const result = await page.evaluate(([r, n, w]) => window.bench(r, n, w), [rows, Number(args.runs), Number(args.warmup)]);
    result.renderer_peak_rss_bytes = rendererPeakRss();
    process.stdout.write(JSON.stringify(result) + '\n');
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

main().catch((e) => { process.stderr.write(`error: ${e.message.split('\n')[0]}\n`); process.exitCode = 1; });
