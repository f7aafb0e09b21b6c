#!/usr/bin/env node
// Top-K recommendations from an edge-rec-toolkit .onnx artifact with onnxruntime-node: the same
// answers, in the same JSON, as `python -m runtime_demo` (runtime_demo/recommend.py).
//
//   node recommend.js --model ../../builds/mobile-arm/model.int8.onnx --history 50,172,181 [--json]
//   node recommend.js --model ../../builds/mobile-arm/model.int8.onnx --bench 10000
//
// Contract (shared/DESIGN.md): input `history` int64 [1, L], item indices oldest first, left-padded
// with 0; outputs `scores` float32 [1, K] and `items` int64 [1, K], best first. items.json next to
// the artifact maps index -> original item id (index 0 is padding). Unknown ids are skipped with a
// warning; a history longer than L keeps its most recent L items; answers already in the whole
// history (not only the window the model saw; kept when manifest.json's serving.repeats is "allow"),
// padding and non-finite scores are left out, then at
// most manifest.json's profile.serving.top_k answers are kept (all of them without a manifest.json
// next to the model): the model may return more candidates than top_k.
//
// Exit codes: 0 success, 2 bad input or usage (one line on stderr), 130 interrupted.
'use strict';

const fs = require('fs');
const path = require('path');

const EXIT_OK = 0;
const EXIT_BAD_INPUT = 2;
const EXIT_INTERRUPTED = 130;
const HISTORY_MODULE = '../web/history.mjs'; // the encoding the web client uses too (an ES module)
const ITEMS_FILE = 'items.json';
const MANIFEST_FILE = 'manifest.json';
const SCORE_DECIMALS = 6;
const WARMUP_REQUESTS = 1000;
const BENCH_MAX_LENGTH_FACTOR = 2; // --bench histories: 1 .. 2 L items, so some overflow the window
const USAGE = 'usage: node recommend.js --model FILE.onnx (--history ID,ID,... | --bench N) ' +
  '[--json] [--threads T] [--seed S]';

class InputError extends Error {}

function parseArgs(argv) {
  const flags = { '--model': 'model', '--history': 'history', '--bench': 'bench', '--threads': 'threads',
    '--seed': 'seed' };
  const args = { json: false, threads: 1, seed: 0 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--json') { args.json = true; continue; }
    if (arg === '--help' || arg === '-h') { console.log(USAGE); process.exit(EXIT_OK); }
    const [flag, inline] = arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)]
      : [arg, undefined];
    if (!(flag in flags)) throw new InputError(`unknown argument ${JSON.stringify(arg)} (${USAGE})`);
    const value = inline !== undefined ? inline : argv[++i];
    if (value === undefined) throw new InputError(`${flag} needs a value (${USAGE})`);
    args[flags[flag]] = value;
  }
  if (args.model === undefined) throw new InputError(`--model is required (${USAGE})`);
  if ((args.history === undefined) === (args.bench === undefined)) {
    throw new InputError(`give exactly one of --history and --bench (${USAGE})`);
  }
  for (const name of ['bench', 'threads']) {
    if (args[name] !== undefined && typeof args[name] === 'string') args[name] = positiveInt(`--${name}`, args[name]);
  }
  if (typeof args.seed === 'string') {
    if (!/^-?\d+$/.test(args.seed)) throw new InputError(`--seed: expected an integer, got ${JSON.stringify(args.seed)}`);
    args.seed = Number(args.seed);
  }
  return args;
}

function positiveInt(flag, text) {
  if (!/^\d+$/.test(text) || Number(text) <= 0) {
    throw new InputError(`${flag}: expected a positive integer, got ${JSON.stringify(text)}`);
  }
  return Number(text);
}

// "ID,ID,..." (oldest first) -> ids; "" is the empty history. Same rules as the Python demo.
function parseHistory(text) {
  if (text.trim() === '') return [];
  const items = text.split(',').map((part) => part.trim());
  items.forEach((item, i) => {
    if (item === '') {
      throw new InputError(`--history ${JSON.stringify(text)}: item ${i + 1} is empty; expected ID,ID,... (oldest first)`);
    }
  });
  return items;
}

function readItems(file) {
  if (!fs.existsSync(file)) throw new InputError(`${file}: no such file (items.json must lie next to the artifact)`);
  let items;
  try {
    items = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new InputError(`${file}: not valid JSON (${e.message})`);
  }
  if (!Array.isArray(items) || items.length < 2 || !items.every((i) => typeof i === 'string')) {
    throw new InputError(`${file}: expected a JSON list of item id strings, index 0 the padding ""`);
  }
  return items;
}

// How many answers an app keeps: manifest.json's profile.serving.top_k; undefined without a manifest.
function readTopK(file) {
  if (!fs.existsSync(file)) return undefined;
  let manifest;
  try {
    manifest = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new InputError(`${file}: not valid JSON (${e.message})`);
  }
  let topK = manifest;
  for (const key of ['profile', 'serving', 'top_k']) {
    topK = topK !== null && typeof topK === 'object' && !Array.isArray(topK) ? topK[key] : undefined;
  }
  if (!Number.isInteger(topK) || topK < 1) throw new InputError(`${file}: profile.serving.top_k must be a positive integer`);
  return topK;
}

// Whether the app keeps answers the user has already seen: manifest.json's serving.repeats is "allow"
// (a build made with --repeats allow); "drop", no such field or no manifest: they are dropped.
function readAllowRepeats(file) {
  if (!fs.existsSync(file)) return false;
  const serving = JSON.parse(fs.readFileSync(file, 'utf8')).serving; // valid JSON: readTopK read it first
  const repeats = serving !== null && typeof serving === 'object' && serving.repeats !== undefined ? serving.repeats : 'drop';
  if (repeats !== 'drop' && repeats !== 'allow') throw new InputError(`${file}: serving.repeats must be "drop" or "allow"`);
  return repeats === 'allow';
}

// One loaded artifact with its vocabulary: original ids in, top-K original ids out.
class Recommender {
  static async load(model, threads) {
    const ort = require('onnxruntime-node');
    const { encodeHistory } = await import(HISTORY_MODULE);
    if (path.extname(model).toLowerCase() !== '.onnx') {
      throw new InputError(`--model ${model}: the node demo runs .onnx artifacts (use python -m runtime_demo for .pte)`);
    }
    if (!fs.existsSync(model) || !fs.statSync(model).isFile()) throw new InputError(`--model ${model}: no such file`);
    const itemIds = readItems(path.join(path.dirname(model), ITEMS_FILE));
    const keep = readTopK(path.join(path.dirname(model), MANIFEST_FILE));
    const allowRepeats = readAllowRepeats(path.join(path.dirname(model), MANIFEST_FILE));
    let session;
    try {
      session = await ort.InferenceSession.create(model, {
        intraOpNumThreads: threads, interOpNumThreads: 1, executionProviders: ['cpu'], logSeverityLevel: 3,
      });
    } catch (e) {
      const first = String(e.message || e).trim().split('\n')[0];
      throw new InputError(`${model}: not a loadable onnx artifact (${first})`);
    }
    return new Recommender(ort, encodeHistory, session, itemIds, model, keep, allowRepeats);
  }

  constructor(ort, encodeHistory, session, itemIds, model, keep, allowRepeats) {
    this.ort = ort;
    this.encodeHistory = encodeHistory;
    this.keep = keep; // undefined: keep every answer
    this.allowRepeats = allowRepeats; // true: answers the user has seen are kept
    this.session = session;
    this.itemIds = itemIds;
    this.model = model;
    this.index = new Map();
    itemIds.forEach((item, i) => { if (i > 0) this.index.set(item, i); });
    const input = session.inputMetadata ? session.inputMetadata[0] : undefined;
    const output = session.outputMetadata ? session.outputMetadata[0] : undefined;
    this.inputName = session.inputNames[0];
    this.maxHistory = input && input.shape ? Number(input.shape[1]) : NaN;
    this.topK = output && output.shape ? Number(output.shape[1]) : NaN;
    if (!Number.isInteger(this.maxHistory) || this.maxHistory <= 0) {
      throw new InputError(`${model}: input ${this.inputName} has no fixed [1, L] shape`);
    }
  }

  // Original ids (oldest first) -> { input [1, L] int64, unknown ids, known count, used count }.
  encode(history) {
    const { data, known, unknown, used } = this.encodeHistory(this.index, this.maxHistory, history);
    return { input: new this.ort.Tensor('int64', data, [1, this.maxHistory]), unknown, known, used };
  }

  async recommend(history) {
    const { input, unknown, known, used } = this.encode(history);
    const result = await this.session.run({ [this.inputName]: input });
    const scores = result.scores.data; // Float32Array, best first
    const items = result.items.data; // BigInt64Array
    const seen = new Set(this.allowRepeats ? [] : known);
    const out = { items: [], scores: [], unknown, known: known.length, used };
    for (let k = 0; k < items.length; k++) {
      const index = Number(items[k]);
      const score = scores[k];
      if (index === 0 || seen.has(index) || !Number.isFinite(score)) continue;
      if (index < 0 || index >= this.itemIds.length) {
        throw new InputError(`${this.model}: answered item ${index}, but ${ITEMS_FILE} has ` +
          `${this.itemIds.length} entries (items.json from another build?)`);
      }
      if (this.keep !== undefined && out.items.length === this.keep) break;
      out.items.push(this.itemIds[index]);
      out.scores.push(score);
    }
    return out;
  }
}

// Fixed 6 decimals, half away from zero (toFixed), no "-0.000000": the Python demo's format_score.
function formatScore(score) {
  return (score === 0 ? 0 : score).toFixed(SCORE_DECIMALS);
}

// JSON strings as Python's json.dumps writes them (non-ASCII as \uXXXX), so both demos print the
// same bytes for the same answer.
function jsonString(text) {
  return JSON.stringify(text).replace(/[\u007f-\uffff]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}

function formatJson(rec) {
  return `{"items": [${rec.items.map(jsonString).join(', ')}], "scores": [${rec.scores.map(formatScore).join(', ')}]}`;
}

function formatTable(rec) {
  const width = Math.max(4, ...rec.items.map((i) => i.length));
  const lines = [`${'rank'.padStart(4)}  ${'item'.padEnd(width)}  ${'score'.padStart(10)}`];
  rec.items.forEach((item, k) => {
    lines.push(`${String(k + 1).padStart(4)}  ${item.padEnd(width)}  ${formatScore(rec.scores[k]).padStart(10)}`);
  });
  return lines.join('\n');
}

function warnUnknown(unknown, shown = 10) {
  if (unknown.length === 0) return;
  const more = unknown.length > shown ? ` and ${unknown.length - shown} more` : '';
  console.error(`warning: skipped ${unknown.length} unknown item id(s) not in ${ITEMS_FILE}: ` +
    `${unknown.slice(0, shown).join(', ')}${more}`);
}

// Small seeded PRNG (mulberry32): the same --bench histories on every run.
function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// The node demo has no dataset reader: its --bench histories are random items of the vocabulary
// (1 .. 2 L long, seeded). The Python demo's --bench uses real users' histories.
function benchHistories(rec, n, seed) {
  const random = mulberry32(seed);
  const vocab = rec.itemIds.length - 1;
  const histories = [];
  for (let r = 0; r < n; r++) {
    const length = 1 + Math.floor(random() * BENCH_MAX_LENGTH_FACTOR * rec.maxHistory);
    const history = [];
    for (let k = 0; k < length; k++) history.push(rec.itemIds[1 + Math.floor(random() * vocab)]);
    histories.push(history);
  }
  return histories;
}

function percentile(sorted, p) {
  // linear interpolation between closest ranks, as numpy.percentile
  const position = (sorted.length - 1) * p / 100;
  const lo = Math.floor(position);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (position - lo);
}

async function bench(rec, n, seed, threads) {
  const histories = benchHistories(rec, n, seed);
  for (const history of histories.slice(0, WARMUP_REQUESTS)) await rec.recommend(history);
  if (global.gc) global.gc();
  const rssBefore = process.memoryUsage().rss;
  const ms = new Float64Array(n);
  for (let r = 0; r < n; r++) {
    const start = process.hrtime.bigint();
    await rec.recommend(histories[r]);
    ms[r] = Number(process.hrtime.bigint() - start) / 1e6;
  }
  if (global.gc) global.gc();
  const rssAfter = process.memoryUsage().rss;
  const sorted = Float64Array.from(ms).sort();
  const mean = ms.reduce((a, b) => a + b, 0) / n;
  return {
    requests: n, runtime: 'onnxruntime-node', threads,
    p50_ms: percentile(sorted, 50), p95_ms: percentile(sorted, 95), p99_ms: percentile(sorted, 99), mean_ms: mean,
    rss_before_bytes: rssBefore, rss_after_bytes: rssAfter, rss_growth: rssAfter / rssBefore - 1,
  };
}

function benchText(b) {
  const mib = (x) => (x / 2 ** 20).toFixed(1);
  return `${b.requests} requests, ${b.runtime}, ${b.threads} thread(s)\n` +
    `latency ms: p50 ${b.p50_ms.toFixed(3)}  p95 ${b.p95_ms.toFixed(3)}  p99 ${b.p99_ms.toFixed(3)}  ` +
    `mean ${b.mean_ms.toFixed(3)}\n` +
    `RSS: before ${mib(b.rss_before_bytes)} MiB, after ${mib(b.rss_after_bytes)} MiB ` +
    `(${b.rss_growth >= 0 ? '+' : ''}${(b.rss_growth * 100).toFixed(2)}%)`;
}

async function main(argv) {
  const args = parseArgs(argv);
  const history = args.history !== undefined ? parseHistory(args.history) : undefined; // fail fast
  const rec = await Recommender.load(args.model, args.threads);
  if (args.bench !== undefined) {
    const b = await bench(rec, args.bench, args.seed, args.threads);
    console.log(args.json ? JSON.stringify(b) : benchText(b));
    return EXIT_OK;
  }
  const answer = await rec.recommend(history);
  warnUnknown(answer.unknown);
  if (args.json) {
    console.log(formatJson(answer));
    return EXIT_OK;
  }
  const window = answer.known > answer.used ? `, the last ${answer.used} of ${answer.known} known` : '';
  console.log(`top ${answer.items.length} of ${rec.topK} for a history of ${history.length} item(s)${window} ` +
    `(${path.basename(args.model)}, onnxruntime-node; items the history already holds are left out)`);
  console.log(formatTable(answer));
  return EXIT_OK;
}

if (require.main === module) {
  process.on('SIGINT', () => { console.error('interrupted'); process.exit(EXIT_INTERRUPTED); });
  main(process.argv.slice(2)).then(
    (code) => { process.exitCode = code; },
    (e) => {
      if (e instanceof InputError) {
        console.error(`error: ${e.message}`);
        process.exitCode = EXIT_BAD_INPUT;
      } else if (e && e.code === 'MODULE_NOT_FOUND') {
        console.error('error: onnxruntime-node is not installed: run `npm install --ignore-scripts` in runtime_demo/node');
        process.exitCode = EXIT_BAD_INPUT;
      } else {
        throw e;
      }
    },
  );
}

module.exports = { Recommender, parseHistory, formatJson, formatScore };
