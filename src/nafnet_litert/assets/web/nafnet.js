// nafnet.js: deblur photos in the browser with a NAFNet LiteRT model (LiteRT.js, WebGPU or WASM), tiled exactly as
// nafnet-litert's Python tiler does it (restore/tiling.py): the same tile positions, the same raised-cosine
// blending over the overlap, reflect padding for images smaller than a tile, finished rows streamed in bands.
//
//   import {loadDeblurrer} from './nafnet.js';          // no import map: LiteRT.js is found beside this file
//   const deblurrer = await loadDeblurrer('model_fp32.tflite', {accelerator: 'auto'});
//   const sharp = await deblurrer.deblur(imageData, (done, total) => ..., {signal});  // ImageData in and out
//   deblurrer.info  // {backend, reason, fullyAccelerated, modelBytes, tile, overlap, threads, runtime}
//   await deblurrer.delete();
//
// Each deblurrer runs in its own Web Worker (nafnet-worker.js) with its own LiteRT.js runtime: the page keeps
// drawing while tiles run, a WASM deblurrer gets the threaded runtime whatever was loaded before it, and an
// AbortSignal stops a run after the tile in flight. `deblurRows` streams finished rows (a band of at most one tile
// row at a time) instead of building the whole result, so a page can write them straight into a canvas.

export const DEFAULT_OVERLAP = 32;

/** Python's round(): half to even, on the exact rational num / den (integers). */
function roundHalfEven(num, den) {
  const q = Math.floor(num / den);
  const r2 = 2 * (num - q * den);
  if (r2 > den) return q + 1;
  if (r2 === den) return q % 2 === 0 ? q : q + 1;
  return q;
}

/** Start offsets of tiles along one axis (length >= tile): the fewest tiles whose overlaps are all >= overlap,
 *  spread evenly from edge to edge. */
export function positions(length, tile, overlap) {
  if (overlap < 0 || overlap >= tile) throw new Error(`overlap must be in [0, ${tile}), got ${overlap}`);
  if (length <= tile) return [0];
  const n = Math.ceil((length - overlap) / (tile - overlap));
  const out = [];
  for (let i = 0; i < n; i++) out.push(roundHalfEven(i * (length - tile), n - 1));
  return out;
}

/** 1-D weights: raised-cosine ramps of `left` / `right` pixels at the two ends, 1 in between. */
export function rampWindow(tile, left, right) {
  const w = new Float64Array(tile).fill(1);
  for (let k = 0; k < left; k++) w[k] = 0.5 - 0.5 * Math.cos((Math.PI * (k + 0.5)) / left);
  for (let k = 0; k < right; k++) w[tile - 1 - k] = 0.5 - 0.5 * Math.cos((Math.PI * (k + 0.5)) / right);
  return w;
}

/** The window of every tile along one axis. */
export function axisWindows(starts, tile) {
  return starts.map((s, i) => {
    const left = i > 0 ? starts[i - 1] + tile - s : 0;
    const right = i + 1 < starts.length ? s + tile - starts[i + 1] : 0;
    return rampWindow(tile, Math.max(0, left), Math.max(0, right));
  });
}

/** The sum of the windows over every position of one axis: the blend's normaliser is separable, so the 2-D sum of
 *  weights at (y, x) is axisSums(y) * axisSums(x) and no per-pixel weight buffer is needed. */
export function axisSums(starts, windows, tile, length) {
  const sum = new Float64Array(length);
  starts.forEach((s, i) => {
    for (let k = 0; k < tile && s + k < length; k++) sum[s + k] += windows[i][k];
  });
  return sum;
}

/** numpy's pad modes, as an index map: 'reflect' mirrors without repeating the edge, 'symmetric' with it. */
export function padIndex(i, n, mode) {
  if (n === 1) return 0;
  const period = mode === 'reflect' ? 2 * (n - 1) : 2 * n;
  const j = i % period;
  if (mode === 'reflect') return j < n ? j : period - j;
  return j < n ? j : period - 1 - j;
}

/** float -> 8 bits as the Python writer does it: clamp to [0, 1], x 255 in float32, round half to even. */
export function toByte(value) {
  const t = Math.fround(Math.min(1, Math.max(0, Math.fround(value))) * 255);
  let v = Math.round(t);
  if (v - t === 0.5 && v % 2 === 1) v -= 1;
  return v;
}

/** Whether a WebGPU adapter is the browser's fallback (software) one: GPUAdapterInfo.isFallbackAdapter, or the
 *  older GPUAdapter.isFallbackAdapter. */
function isFallbackAdapter(adapter) {
  return (adapter.info && adapter.info.isFallbackAdapter === true) || adapter.isFallbackAdapter === true;
}

/** Which backend `auto` means in this browser, and why: {backend: 'webgpu' | 'wasm', reason}. A fallback
 *  (software) WebGPU adapter is far slower than WASM (20-30x per tile on a 2-core machine): it is not chosen. */
export async function chooseBackend() {
  if (!('gpu' in navigator)) return {backend: 'wasm', reason: 'this browser has no WebGPU'};
  let adapter = null;
  try {
    adapter = await navigator.gpu.requestAdapter({powerPreference: 'high-performance'});
  } catch (e) {
    return {backend: 'wasm', reason: `WebGPU failed (${e && e.message ? e.message : e})`};
  }
  if (adapter === null) return {backend: 'wasm', reason: 'no WebGPU adapter'};
  if (isFallbackAdapter(adapter)) {
    return {backend: 'wasm', reason: 'the only WebGPU adapter is a software fallback, slower than WASM'};
  }
  return {backend: 'webgpu', reason: 'a hardware WebGPU adapter'};
}

/** 'webgpu' when the browser has a hardware WebGPU adapter, else 'wasm' (see chooseBackend). */
export async function pickBackend() {
  return (await chooseBackend()).backend;
}

function abortError(signal) {
  if (signal && signal.reason !== undefined) return signal.reason;
  return new DOMException('The deblurring was cancelled.', 'AbortError');
}

export class Deblurrer {
  constructor(worker, info) {
    this.worker = worker;
    this.info = info;
    this.jobs = new Map();
    this.nextId = 1;
    this.deleted = false;
    worker.onmessage = (e) => this._message(e.data);
    worker.onerror = (e) => this._fail(new Error(`the deblurring worker failed: ${e.message || 'unknown error'}`));
  }

  _message(m) {
    const job = this.jobs.get(m.id);
    if (!job) return;
    if (m.type === 'size') {
      job.width = m.width;
      job.height = m.height;
      if (job.onSize) job.onSize(m.width, m.height);
    } else if (m.type === 'rows') {
      job.onRows(m.y, new ImageData(new Uint8ClampedArray(m.data), job.width, m.rows));
    } else if (m.type === 'preview') {
      job.onPreview(m.y, new ImageData(new Uint8ClampedArray(m.data), job.preview.width, m.rows));
    } else if (m.type === 'progress') {
      if (job.onProgress) job.onProgress(m.done, m.total);
    } else {
      this.jobs.delete(m.id);
      job.cleanup();
      if (m.type === 'done') job.resolve({width: job.width, height: job.height, tiles: m.tiles, result: m.result});
      else if (m.type === 'cancelled') job.reject(abortError(job.signal));
      else job.reject(new Error(m.message));
    }
  }

  _fail(error) {
    for (const job of this.jobs.values()) {
      job.cleanup();
      job.reject(error);
    }
    this.jobs.clear();
  }

  async _source(image) {
    if (this.deleted) throw new Error('this deblurrer was deleted');
    if (typeof HTMLCanvasElement !== 'undefined' && image instanceof HTMLCanvasElement ||
        typeof HTMLImageElement !== 'undefined' && image instanceof HTMLImageElement ||
        typeof OffscreenCanvas !== 'undefined' && image instanceof OffscreenCanvas) {
      return {source: await createImageBitmap(image), owned: true};
    }
    if (!(image instanceof ImageData) && !(image instanceof ImageBitmap)) {
      throw new TypeError('deblur takes an ImageData, ImageBitmap, canvas or image element');
    }
    return {source: image, owned: false};
  }

  /** Run in the worker: a promise of {width, height, tiles, result}. */
  _run(source, transfer, {rows = false, keep = false, store, preview = null, onRows, onPreview, onSize, onProgress,
                          signal}) {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const onAbort = () => this.worker.postMessage({type: 'cancel', id});
      const job = {
        onRows: onRows || (() => {}), onPreview: onPreview || (() => {}), onSize, onProgress, signal, preview,
        resolve, reject, width: 0, height: 0, cleanup: () => signal && signal.removeEventListener('abort', onAbort),
      };
      this.jobs.set(id, job);
      if (signal) signal.addEventListener('abort', onAbort, {once: true});
      const moved = transfer && source instanceof ImageBitmap ? [source] : [];
      this.worker.postMessage({type: 'run', id, source, rows, keep, store, preview}, moved);
    });
  }

  /**
   * Deblur `image` (ImageData, ImageBitmap, OffscreenCanvas, a canvas or an image element; any size) and stream the
   * result: `onRows(y, rowsImageData)` receives finished rows top to bottom, `onSize(width, height)` comes first,
   * `onProgress(done, total)` after each tile. `signal` (an AbortSignal) stops the run after the tile in flight and
   * rejects with its reason (an AbortError). `transfer: true` hands an ImageBitmap to the worker instead of copying
   * it (it is closed for the caller). Resolves to {width, height, tiles}. Alpha is kept.
   */
  async deblurRows(image, {onRows, onSize, onProgress, signal, transfer = false} = {}) {
    if (signal && signal.aborted) throw abortError(signal);
    const {source, owned} = await this._source(image);
    const {width, height, tiles} = await this._run(source, transfer || owned, {rows: true, onRows, onSize, onProgress,
                                                                               signal});
    return {width, height, tiles};
  }

  /**
   * Deblur `image` and keep the full-resolution result for later, streaming a `preview` ({width, height},
   * box-filtered) of it as it is made: `onPreview(y, previewRowsImageData)`. No full-resolution pixels cross
   * threads: the worker keeps the photo and, band by band, its result in one full-size store, a file in the
   * origin-private file system when the browser has one (then the page's memory holds only a band of it), else a
   * canvas. Resolves to a DeblurResult {width, height, tiles, stored: 'file' | 'memory', png(), release()}.
   * `store: 'memory'` keeps the result in memory even where a file could be used. Other options as for deblurRows.
   */
  async deblurWithPreview(image, {preview, onPreview, onSize, onProgress, signal, transfer = false, store} = {}) {
    if (signal && signal.aborted) throw abortError(signal);
    const {source, owned} = await this._source(image);
    const size = preview || {width: 1, height: 1};
    const pw = Math.max(1, Math.min(source.width, Math.round(size.width)));
    const ph = Math.max(1, Math.min(source.height, Math.round(size.height)));
    const r = await this._run(source, transfer || owned, {
      keep: true, store, preview: preview ? {width: pw, height: ph} : null, onPreview, onSize, onProgress, signal,
    });
    return new DeblurResult(r.width, r.height, r.tiles, r.result);
  }

  /** Deblur an ImageData (or ImageBitmap, canvas, image) of any size into a new ImageData; `onProgress(done,
   *  total)` after each tile; `options.signal` stops it (see deblurRows). */
  async deblur(image, onProgress, options = {}) {
    if (onProgress && typeof onProgress === 'object') {
      options = onProgress;
      onProgress = options.onProgress;
    }
    let result = null;
    await this.deblurRows(image, {
      ...options,
      onProgress,
      onSize: (w, h) => { result = new ImageData(w, h); },
      onRows: (y, rows) => { result.data.set(rows.data, y * rows.width * 4); },
    });
    return result;
  }

  /** Free the model and stop the worker (a run in progress rejects). Resolves once the worker is stopped: the
   *  model is freed first (its threads exit), so that the runtime's memory is returned at once, not after the
   *  browser's grace period for terminating a worker whose threads are busy. */
  delete() {
    if (this.deleted) return Promise.resolve();
    this.deleted = true;
    for (const id of this.jobs.keys()) this.worker.postMessage({type: 'cancel', id});
    this._fail(new Error('this deblurrer was deleted'));
    return new Promise((resolve) => {
      const stop = () => {
        clearTimeout(timer);
        this.worker.terminate();
        resolve();
      };
      const timer = setTimeout(stop, 1000);
      this.worker.onmessage = (e) => { if (e.data.type === 'closed') stop(); };
      this.worker.postMessage({type: 'close'});
    });
  }
}

/** The folder of the origin-private file system where the worker keeps photos and results (nafnet-worker.js). */
export const STORE_FOLDER = 'nafnet-deblur';
/** Rows read at a time when a stored result is turned into a PNG. */
const PNG_ROWS = 256;

/** A full-resolution result kept by deblurWithPreview: `png()` makes the PNG (a Blob) when called, `release()`
 *  frees what holds it (the file, or the memory). */
export class DeblurResult {
  constructor(width, height, tiles, kept) {
    this.width = width;
    this.height = height;
    this.tiles = tiles;
    this.stored = kept.file ? 'file' : 'memory';
    this.file = kept.file || null;
    if (kept.bitmap) {  // held by a canvas without a copy, for convertToBlob
      this.canvas = new OffscreenCanvas(width, height);
      this.canvas.getContext('bitmaprenderer').transferFromImageBitmap(kept.bitmap);
    }
  }

  async _folder() {
    return (await navigator.storage.getDirectory()).getDirectoryHandle(STORE_FOLDER);
  }

  async png() {
    if (this.canvas) return this.canvas.convertToBlob({type: 'image/png'});
    if (!this.file) throw new Error('this result was released');
    const file = await (await (await this._folder()).getFileHandle(this.file)).getFile();
    const canvas = new OffscreenCanvas(this.width, this.height);
    const ctx = canvas.getContext('2d');
    const stride = this.width * 4;
    for (let y = 0; y < this.height; y += PNG_ROWS) {
      const n = Math.min(PNG_ROWS, this.height - y);
      const bytes = new Uint8ClampedArray(await file.slice(y * stride, (y + n) * stride).arrayBuffer());
      ctx.putImageData(new ImageData(bytes, this.width, n), 0, y);
    }
    try {
      return await canvas.convertToBlob({type: 'image/png'});
    } finally {
      canvas.width = canvas.height = 0;  // its pixels go now, not at the next garbage collection
    }
  }

  async release() {
    if (this.canvas) this.canvas.getContext('bitmaprenderer').transferFromImageBitmap(null);
    this.canvas = null;
    if (this.file) {
      const name = this.file;
      this.file = null;
      await (await this._folder()).removeEntry(name).catch(() => {});
    }
  }
}

/**
 * Load and compile a tile model in a new worker. Options:
 * - `accelerator`: 'auto' (WebGPU on a hardware adapter, else WASM; `info.reason` says why), 'webgpu' or 'wasm';
 * - `threads`: WASM threads (default: up to 4 when the page is cross-origin isolated, as `nafnet-litert serve`
 *   makes it; 1 otherwise); `info.threads` is what the runtime really has;
 * - `litertBase`: the folder holding LiteRT.js's `core/` and `wasm-utils/` packages (default `./litert/` beside
 *   this file, as `nafnet-litert web` writes it; an npm `node_modules/@litertjs/` folder works too);
 * - `wasmDir` (default `litertBase + 'core/wasm/'`), `workerUrl` (default `./nafnet-worker.js` beside this file),
 *   `overlap` (default 32 px), `gpuPrecision` ('fp32' default, or 'fp16').
 */
export async function loadDeblurrer(modelUrl, options = {}) {
  const {accelerator = 'auto', overlap = DEFAULT_OVERLAP, gpuPrecision = 'fp32'} = options;
  if (!['auto', 'webgpu', 'wasm'].includes(accelerator)) {
    throw new Error(`unknown accelerator ${accelerator} (auto, webgpu or wasm)`);
  }
  const choice = accelerator === 'auto' ? await chooseBackend() : {backend: accelerator, reason: 'asked for'};
  const litertBase = new URL(options.litertBase || './litert/', options.litertBase ? location.href : import.meta.url);
  if (!litertBase.pathname.endsWith('/')) litertBase.pathname += '/';
  const wasmDir = new URL(options.wasmDir || 'core/wasm/', options.wasmDir ? location.href : litertBase).href;
  const workerUrl = new URL(options.workerUrl || './nafnet-worker.js',
                            options.workerUrl ? location.href : import.meta.url);
  const isolated = globalThis.crossOriginIsolated === true;
  const threads = options.threads ?? (isolated ? Math.max(1, Math.min(4, navigator.hardwareConcurrency || 1)) : 1);
  const worker = new Worker(workerUrl, {name: 'nafnet-deblur'});
  const loaded = new Promise((resolve, reject) => {
    worker.onmessage = (e) => {
      if (e.data.type === 'loaded') resolve(e.data.info);
      else if (e.data.type === 'error') reject(new Error(e.data.message));
    };
    worker.onerror = (e) => {
      e.preventDefault();
      reject(new Error(`the deblurring worker could not start (${workerUrl.href}: ${e.message || 'not found'})`));
    };
  });
  worker.postMessage({
    type: 'load',
    modelUrl: new URL(modelUrl, location.href).href,
    backend: choice.backend,
    threads,
    overlap,
    gpuPrecision,
    litertBase: litertBase.href,
    wasmDir,
    nafnetUrl: import.meta.url,
  });
  let info;
  try {
    info = await loaded;
  } catch (e) {
    worker.terminate();
    throw e;
  }
  return new Deblurrer(worker, {...info, reason: choice.reason});
}
