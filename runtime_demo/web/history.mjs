// The history encoding of the JavaScript clients (web/recommend.mjs in the browser, node/recommend.js
// under Node): original ids, oldest first, -> the contract's input (shared/DESIGN.md), int64 [1, L]
// item indices left-padded with 0. Ids not in items.json are skipped (and returned); a history longer
// than L keeps its most recent L items. It lies in web/ because the page can only load files below it.

// `index`: Map from original id to item index (1..N-1); `maxHistory`: L.
// Returns { data: BigInt64Array(L), known: indices of the whole history, unknown: ids, used: items in data }.
export function encodeHistory(index, maxHistory, history) {
  const known = [];
  const unknown = [];
  for (const item of history) {
    const i = index.get(item);
    if (i === undefined) unknown.push(item); else known.push(i);
  }
  const window = known.slice(-maxHistory); // the most recent L items
  const data = new BigInt64Array(maxHistory); // zeros: left padding
  window.forEach((i, k) => { data[maxHistory - window.length + k] = BigInt(i); });
  return { data, known, unknown, used: window.length };
}
