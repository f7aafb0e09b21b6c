// Top-K recommendations from an edge-rec-toolkit .onnx artifact in the browser, with onnxruntime-web
// (WebAssembly): the same answers, in the same JSON, as `python -m runtime_demo --json`.
//
// Contract (shared/DESIGN.md): input `history` int64 [1, L], item indices oldest first, left-padded
// with 0; outputs `scores` float32 [1, K] and `items` int64 [1, K], best first. items.json next to
// the model maps index -> original id (index 0 is padding). Unknown ids are skipped; a history
// longer than L keeps its most recent L items; answers in the whole history, padding and non-finite
// scores are dropped, then at most manifest.json's profile.serving.top_k are kept (all of them when
// the build has no manifest.json).
//
// Only the documented onnxruntime-web API: env.wasm, InferenceSession.create, Tensor, session.run.
import * as ort from 'onnxruntime-web';

import { encodeHistory } from './history.mjs';

const SCORE_DECIMALS = 6;

export class InputError extends Error {}

// The runtime's files (ort-wasm-simd-threaded.{mjs,wasm}) and how many threads it may use. More than
// one thread needs a cross-origin isolated page (COOP/COEP headers); this model is too small to gain.
export function configureRuntime(wasmPaths, numThreads = 1) {
  ort.env.wasm.wasmPaths = wasmPaths;
  ort.env.wasm.numThreads = numThreads;
}

async function fetchJson(url, { optional = false } = {}) {
  const response = await fetch(url);
  if (!response.ok) {
    if (optional && response.status === 404) return undefined;
    throw new InputError(`${url}: HTTP ${response.status}`);
  }
  try {
    return await response.json();
  } catch (e) {
    throw new InputError(`${url}: not valid JSON (${e.message})`);
  }
}

// One loaded artifact with its vocabulary: original ids in, the app's answer out.
export class Recommender {
  // `modelUrl`: the .onnx; items.json (required), manifest.json and titles.json (optional) lie next to it.
  static async load(modelUrl) {
    const base = new URL('.', new URL(modelUrl, document.baseURI));
    const itemIds = await fetchJson(new URL('items.json', base));
    if (!Array.isArray(itemIds) || itemIds.length < 2 || !itemIds.every((i) => typeof i === 'string')) {
      throw new InputError(`${new URL('items.json', base)}: expected a JSON list of item id strings, index 0 the padding ""`);
    }
    const manifest = await fetchJson(new URL('manifest.json', base), { optional: true });
    let keep;
    let allowRepeats = false; // manifest.json's serving.repeats "allow": answers the user has seen are kept
    if (manifest !== undefined) {
      keep = manifest?.profile?.serving?.top_k;
      if (!Number.isInteger(keep) || keep < 1) throw new InputError('manifest.json: profile.serving.top_k must be a positive integer');
      const repeats = manifest?.serving?.repeats ?? 'drop';
      if (repeats !== 'drop' && repeats !== 'allow') throw new InputError('manifest.json: serving.repeats must be "drop" or "allow"');
      allowRepeats = repeats === 'allow';
    }
    const titles = (await fetchJson(new URL('titles.json', base), { optional: true })) || {};
    let session;
    try {
      session = await ort.InferenceSession.create(new URL(modelUrl, document.baseURI).href, { executionProviders: ['wasm'] });
    } catch (e) {
      throw new InputError(`${modelUrl}: not a loadable onnx artifact (${String(e.message || e).split('\n')[0]})`);
    }
    return new Recommender(session, itemIds, keep, titles, allowRepeats);
  }

  constructor(session, itemIds, keep, titles, allowRepeats = false) {
    this.session = session;
    this.itemIds = itemIds;
    this.keep = keep; // undefined: keep every answer
    this.allowRepeats = allowRepeats;
    this.titles = titles;
    this.index = new Map();
    itemIds.forEach((item, i) => { if (i > 0) this.index.set(item, i); });
    this.inputName = session.inputNames[0];
    const shape = session.inputMetadata?.[0]?.shape;
    this.maxHistory = shape ? Number(shape[1]) : NaN;
    if (!Number.isInteger(this.maxHistory) || this.maxHistory <= 0) {
      throw new InputError(`input ${this.inputName} has no fixed [1, L] shape`);
    }
  }

  async recommend(history) {
    const { data, known, unknown } = encodeHistory(this.index, this.maxHistory, history);
    const input = new ort.Tensor('int64', data, [1, this.maxHistory]);
    const result = await this.session.run({ [this.inputName]: input });
    const scores = result.scores.data; // Float32Array, best first
    const items = result.items.data; // BigInt64Array
    const seen = new Set(this.allowRepeats ? [] : known);
    const answer = { items: [], scores: [], unknown };
    for (let k = 0; k < items.length; k++) {
      const index = Number(items[k]);
      if (index === 0 || seen.has(index) || !Number.isFinite(scores[k])) continue;
      if (index < 0 || index >= this.itemIds.length) {
        throw new InputError(`answered item ${index}, but items.json has ${this.itemIds.length} entries (items.json from another build?)`);
      }
      if (this.keep !== undefined && answer.items.length === this.keep) break;
      answer.items.push(this.itemIds[index]);
      answer.scores.push(scores[k]);
    }
    return answer;
  }
}

// "ID,ID,..." (oldest first) -> ids; "" is the empty history. Same rules as the other clients.
export function parseHistory(text) {
  if (text.trim() === '') return [];
  const items = text.split(',').map((part) => part.trim());
  items.forEach((item, i) => {
    if (item === '') throw new InputError(`history ${JSON.stringify(text)}: item ${i + 1} is empty; expected ID,ID,... (oldest first)`);
  });
  return items;
}

// Fixed 6 decimals, half away from zero (toFixed), no "-0.000000": Python's format_score.
export function formatScore(score) {
  return (score === 0 ? 0 : score).toFixed(SCORE_DECIMALS);
}

// JSON strings as Python's json.dumps writes them (non-ASCII as \uXXXX).
function jsonString(text) {
  return JSON.stringify(text).replace(/[\u007f-\uffff]/g, (c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0'));
}

export function formatJson(answer) {
  return `{"items": [${answer.items.map(jsonString).join(', ')}], "scores": [${answer.scores.map(formatScore).join(', ')}]}`;
}
