// nafnet-worker.js: one deblurrer of nafnet.js, in a dedicated Web Worker: its own LiteRT.js runtime, the model,
// and the tiling loop. A classic worker (not a module worker): LiteRT.js loads its Emscripten runtime with
// importScripts, which module workers do not have; the ES modules (LiteRT.js, nafnet.js) are loaded with import().
//
// Messages in:  {type: 'load', modelUrl, backend, threads, overlap, gpuPrecision, litertBase, wasmDir, nafnetUrl}
//               {type: 'run', id, source: ImageData | ImageBitmap, rows: bool, keep: bool,
//                preview: {width, height} | null, store: 'file' | 'memory' | undefined}
//               {type: 'cancel', id}   {type: 'close'}
// Messages out: {type: 'loaded', info} | {type: 'error', id?, message}
//               {type: 'size', id, width, height}, {type: 'progress', id, done, total},
//               {type: 'rows' | 'preview', id, y, rows, data: ArrayBuffer (RGBA, transferred)},
//               {type: 'done', id, tiles, result: {file: name} | {bitmap} (with keep)} | {type: 'cancelled', id}
//               {type: 'closed'}
//
// Memory: the photo and, band by band, its result share one full-size RGBA store (finished rows overwrite source
// rows that no later tile reads): a file in the origin-private file system when the browser has one (then this
// page's memory holds one band of it), else a canvas. Besides it: float32 accumulators for one band of rows (the
// blend's normaliser is separable: no weight buffer), a few finished rows at a time and one tile. On WASM the
// model's output is read in place, not copied per tile.
'use strict';

let lite = null;
let tiling = null;
let model = null;
let info = null;
let queue = Promise.resolve();
const cancelled = new Set();

const message = (e) => (e && e.message ? e.message : String(e));

async function importLiteRt(base) {
  const url = new URL('core/dist/index.js', base).href;
  try {
    return await import(url);
  } catch (e) {
    if (!/specifier/i.test(message(e))) throw e;
    // an npm copy of @litertjs/core still imports "@litertjs/wasm-utils" by name (workers have no import maps):
    // load it with that import pointed at the wasm-utils package beside it
    const response = await fetch(url);
    if (!response.ok) throw new Error(`cannot load LiteRT.js from ${url} (HTTP ${response.status})`);
    const utils = new URL('wasm-utils/dist/index.js', base).href;
    const text = (await response.text()).replace('from "@litertjs/wasm-utils"', `from ${JSON.stringify(utils)}`);
    const blobUrl = URL.createObjectURL(new Blob([text], {type: 'text/javascript'}));
    try {
      return await import(blobUrl);
    } finally {
      URL.revokeObjectURL(blobUrl);
    }
  }
}

/** The LiteRT.js runtime file this worker really loaded (threaded, SIMD, JSPI or compat), from resource timing. */
function loadedRuntime() {
  const names = performance.getEntriesByType('resource').map((r) => r.name);
  const js = names.find((n) => /litert_wasm_\w*internal\.js$/.test(n));
  const m = js && js.match(/litert_wasm_(?:(\w+)_)?internal\.js$/);
  return m ? (m[1] || 'simd') : 'unknown';
}

function nativeLog(line) {
  if (/^\s*(INFO|WARNING|VERBOSE|DEBUG)\b|^[IWV]\d{4} /.test(line)) console.debug(line);
  else console.error(line);
}

async function loadRuntime(wasmDir, threads) {
  // Emscripten takes the folder of its .wasm (and the script of its pthread workers) from this object; without it,
  // it would look beside this worker's script.
  const runtimeFiles = (name) => ({
    locateFile: (path) => wasmDir + path,
    mainScriptUrlOrBlob: wasmDir + name,
    // the runtime's native log lines (INFO, WARNING: one per accelerator registered, ...) are not the page's errors
    print: nativeLog,
    printErr: nativeLog,
  });
  if (threads > 1 && globalThis.crossOriginIsolated === true) {
    // Emscripten starts one pthread worker per logical core (8 on many phones), each holding its own instance of
    // the runtime: start only as many as the threads asked for (it adds more itself if ever needed)
    if (navigator.hardwareConcurrency > threads) {
      Object.defineProperty(navigator, 'hardwareConcurrency', {value: threads, configurable: true});
    }
    try {
      self.Module = runtimeFiles('litert_wasm_threaded_internal.js');
      await lite.loadLiteRt(wasmDir, {threads: true});
      return;
    } catch (e) {
      // no relaxed SIMD or no threads in this browser: the single-threaded runtime below, reported as such
      self.Module = undefined;
    }
  }
  self.Module = runtimeFiles('litert_wasm_internal.js');
  await lite.loadLiteRt(wasmDir);
}

async function load(m) {
  tiling = await import(m.nafnetUrl);
  try {
    lite = await importLiteRt(m.litertBase);
  } catch (e) {
    throw new Error(`cannot load LiteRT.js from ${m.litertBase} (${message(e)})`);
  }
  await loadRuntime(m.wasmDir, m.backend === 'wasm' ? m.threads : 1);
  const runtime = loadedRuntime();
  const threads = m.backend === 'wasm' ? (runtime === 'threaded' ? m.threads : 1) : null;
  const response = await fetch(m.modelUrl);
  if (!response.ok) throw new Error(`cannot load the model ${m.modelUrl} (HTTP ${response.status})`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  const options = {accelerator: m.backend};
  if (m.backend === 'webgpu') options.gpuOptions = {precision: m.gpuPrecision};
  else options.cpuOptions = {numThreads: threads};
  try {
    model = await lite.loadAndCompile(bytes, options);
  } catch (e) {
    throw new Error(`${m.modelUrl.split('/').pop()} is not a model LiteRT.js can run (${message(e)})`);
  }
  const shape = Array.from(model.getInputDetails()[0].shape);
  if (shape.length !== 4 || shape[1] !== 3 || shape[2] !== shape[3]) {
    model.delete();
    model = null;
    throw new Error(`${m.modelUrl} is not a square NCHW [1,3,T,T] tile model (input ${JSON.stringify(shape)})`);
  }
  const tile = shape[2];
  info = {
    backend: m.backend,
    fullyAccelerated: model.isFullyAccelerated,
    modelBytes: bytes.length,
    tile,
    overlap: Math.min(m.overlap, Math.floor(tile / 2)),
    threads,
    runtime,
  };
  return info;
}

/** How many rows are copied at a time when a photo is written into a store. */
const FILL_ROWS = 64;

/** Where a run keeps the photo and, band by band, its result (finished rows overwrite source rows that no later tile
 *  reads, so one full-size buffer holds both). Every store has read(x, y, w, h) -> {data, offset, stride} (RGBA,
 *  pixel (r, c) of the rectangle at data[offset + r * stride + 4 * c]), write(imageData, y, rows), finish(keep)
 *  -> what the page gets back, and abort(). */
class ImageDataStore {  // an ImageData that is only read (deblurRows of an ImageData)
  constructor(image) {
    this.image = image;
  }

  read(x, y) {
    return {data: this.image.data, offset: (y * this.image.width + x) * 4, stride: this.image.width * 4};
  }

  write() {}

  finish() {
    return null;
  }

  abort() {}
}

class CanvasStore {  // a full-size canvas in this worker's memory
  constructor(width, height) {
    this.canvas = new OffscreenCanvas(width, height);
    this.ctx = this.canvas.getContext('2d', {willReadFrequently: true});
  }

  fill(source) {
    if (source instanceof ImageBitmap) this.ctx.drawImage(source, 0, 0);
    else this.ctx.putImageData(source, 0, 0);
  }

  read(x, y, w, h) {
    return {data: this.ctx.getImageData(x, y, w, h).data, offset: 0, stride: w * 4};
  }

  write(image, y, rows) {
    this.ctx.putImageData(image, 0, y, 0, 0, image.width, rows);
  }

  finish(keep) {  // handed over without a copy
    const bitmap = keep ? this.canvas.transferToImageBitmap() : null;
    this.canvas.width = this.canvas.height = 0;
    return bitmap ? {bitmap} : null;
  }

  abort() {
    this.canvas.width = this.canvas.height = 0;
  }
}

class FileStore {  // a raw RGBA file in the origin-private file system: the page's memory holds one band of it
  static available() {
    return typeof FileSystemFileHandle !== 'undefined' && 'createSyncAccessHandle' in FileSystemFileHandle.prototype &&
      typeof navigator.storage?.getDirectory === 'function';
  }

  static async open(width, height) {
    const root = await navigator.storage.getDirectory();
    const folder = await root.getDirectoryHandle(tiling.STORE_FOLDER, {create: true});
    await FileStore.sweep(folder);
    const name = `run-${Date.now()}-${Math.random().toString(36).slice(2)}.rgba`;
    const handle = await folder.getFileHandle(name, {create: true});
    const store = new FileStore(folder, name, width, height);
    store.file = await handle.createSyncAccessHandle();
    store.file.truncate(width * height * 4);
    return store;
  }

  /** Remove what runs of pages that were closed without cleaning up left behind (a day old; a file in use by
   *  another page is locked and stays). */
  static async sweep(folder) {
    for await (const [name, entry] of folder.entries()) {
      try {
        if (entry.kind === 'file' && Date.now() - (await entry.getFile()).lastModified > 86400e3) {
          await folder.removeEntry(name);
        }
      } catch {
        // in use: not ours to remove
      }
    }
  }

  constructor(folder, name, width, height) {
    this.folder = folder;
    this.name = name;
    this.width = width;
    this.height = height;
    this.band = null;  // the rows last read: {y, rows}
    this.buffer = null;
  }

  fill(source) {
    const w = this.width;
    if (source instanceof ImageData) {
      this.file.write(source.data, {at: 0});
      return;
    }
    const rows = Math.min(FILL_ROWS, this.height);
    const ctx = new OffscreenCanvas(w, rows).getContext('2d', {willReadFrequently: true});
    for (let y = 0; y < this.height; y += rows) {
      const n = Math.min(rows, this.height - y);
      ctx.clearRect(0, 0, w, rows);
      ctx.drawImage(source, 0, y, w, n, 0, 0, w, n);
      this._write(ctx.getImageData(0, 0, w, n).data, y);
    }
  }

  _write(bytes, y) {
    if (this.file.write(bytes, {at: y * this.width * 4}) !== bytes.length) {
      throw new Error('could not store the photo in the browser\'s storage (is the disk full?)');
    }
  }

  read(x, y, w, h) {  // whole rows: the tiles of one tile row share them
    const stride = this.width * 4;
    if (!this.band || this.band.y !== y || this.band.rows !== h) {
      if (!this.buffer || this.buffer.length < h * stride) this.buffer = new Uint8ClampedArray(h * stride);
      this.file.read(this.buffer.subarray(0, h * stride), {at: y * stride});
      this.band = {y, rows: h};
    }
    return {data: this.buffer, offset: x * 4, stride};
  }

  write(image, y, rows) {
    this._write(image.data.subarray(0, rows * this.width * 4), y);
  }

  finish(keep) {
    this.file.flush();
    this.file.close();
    this.buffer = null;
    if (keep) return {file: this.name};
    this.folder.removeEntry(this.name).catch(() => {});
    return null;
  }

  abort() {
    try {
      this.file.close();
    } catch {
      // already closed
    }
    this.folder.removeEntry(this.name).catch(() => {});
  }
}

/** The store for a run: an ImageData that is only read needs none; else the origin-private file system when the
 *  browser has it (and `store` is not 'memory'), else a canvas. */
async function openStore(source, keep, store) {
  if (source instanceof ImageData && !keep) return new ImageDataStore(source);
  let s = null;
  if (store !== 'memory' && FileStore.available()) {
    try {
      s = await FileStore.open(source.width, source.height);
    } catch (e) {
      if (store === 'file') throw new Error(`the browser's file storage cannot be used (${message(e)})`);
    }
  } else if (store === 'file') {
    throw new Error('this browser has no origin-private file system with synchronous access');
  }
  s = s || new CanvasStore(source.width, source.height);
  try {
    s.fill(source);
  } catch (e) {
    s.abort();
    throw e;
  }
  return s;
}

/** Yield to this worker's event loop (so that a 'cancel' message gets in) for one task: a message to itself, not a
 *  timer, which browsers clamp to 4 ms once nested. */
const yieldChannel = new MessageChannel();
let wake = null;
yieldChannel.port1.onmessage = () => {
  const resolve = wake;
  wake = null;
  if (resolve) resolve();
};
const nextTask = () => new Promise((resolve) => {
  wake = resolve;
  yieldChannel.port2.postMessage(0);
});

/** Run the model on one tile and call `use(data)` with its float32 output (NCHW) before the tensors are freed. */
async function runTile(input, tile, use) {
  const tensor = new lite.Tensor(input, [1, 3, tile, tile]);
  let outputs;
  try {
    outputs = await model.run(tensor);
  } finally {
    tensor.delete();
  }
  try {
    const out = outputs[0];
    const heap = inPlace(out, 3 * tile * tile);
    if (heap) {
      const buffer = out.liteRtTensorBuffer;
      const ptr = buffer.lock(heap.wasm.LiteRtTensorBufferLockMode.READ);
      try {
        use(new Float32Array(heap.wasm.HEAPU8.buffer, ptr, 3 * tile * tile));
      } finally {
        buffer.unlock();
      }
    } else {
      use(await out.data());
    }
  } finally {
    for (const t of outputs) t.delete();
  }
}

/** {wasm} when `tensor` is a plain float32 host buffer that can be read in the WASM heap without a copy (what
 *  LiteRT.js's own toTypedArray checks before it copies) of `values` floats, else null. */
function inPlace(tensor, values) {
  try {
    const wasm = lite.getGlobalLiteRt().liteRtWasm;
    const b = tensor.liteRtTensorBuffer;
    const host = b.bufferType().value === wasm.LiteRtTensorBufferType.HOST_MEMORY.value;
    const ok = host && b.size() === b.packedSize() && b.packedSize() === values * 4 && b.offset() === 0 &&
      tensor.type.dtype === 'float32';
    return ok ? {wasm} : null;
  } catch {
    return null;
  }
}

/** Box-filtered preview rows: finished full-resolution rows in, rows of a (width x height) preview out, each
 *  preview pixel the mean of the source pixels that fall in it. */
function previewMaker(w0, h0, preview, send) {
  const {width: pw, height: ph} = preview;
  const sum = new Float64Array(pw * 4), count = new Float64Array(pw);
  const col = new Int32Array(w0);
  for (let x = 0; x < w0; x++) col[x] = Math.min(pw - 1, Math.floor((x * pw) / w0));
  let current = 0;  // the preview row being summed
  let pending = [];  // finished preview rows not yet sent: [row, bytes]
  const flushRow = () => {
    const bytes = new Uint8ClampedArray(pw * 4);
    for (let px = 0; px < pw; px++) {
      for (let k = 0; k < 4; k++) bytes[px * 4 + k] = Math.round(sum[px * 4 + k] / count[px]);
    }
    pending.push(bytes);
    sum.fill(0);
    count.fill(0);
  };
  return {
    add(y, bytes, offset) {  // full-resolution row y, RGBA at bytes[offset ...]
      const py = Math.min(ph - 1, Math.floor((y * ph) / h0));
      while (py > current) {
        flushRow();
        current++;
      }
      for (let x = 0; x < w0; x++) {
        const o = offset + x * 4, p = col[x] * 4;
        sum[p] += bytes[o];
        sum[p + 1] += bytes[o + 1];
        sum[p + 2] += bytes[o + 2];
        sum[p + 3] += bytes[o + 3];
        count[col[x]]++;
      }
      if (y === h0 - 1) {
        flushRow();
        current++;
      }
    },
    send() {
      if (!pending.length) return;
      const data = new Uint8ClampedArray(pending.length * pw * 4);
      pending.forEach((row, i) => data.set(row, i * pw * 4));
      send(current - pending.length, pending.length, data);
      pending = [];
    },
  };
}

/** How many finished rows are converted and handed on at a time. */
const ROWS_AT_ONCE = 64;

/** Deblur `source`; null when cancelled, else {tiles, result} (result: what the store hands over, with want.keep). */
async function run(id, source, want) {
  const {positions} = tiling;
  const {tile, overlap} = info;
  const w0 = source.width, h0 = source.height;
  if (!(w0 > 0 && h0 > 0)) throw new Error('the image is empty');
  postMessage({type: 'size', id, width: w0, height: h0});
  const ys = positions(Math.max(h0, tile), tile, overlap), xs = positions(Math.max(w0, tile), tile, overlap);
  // The photo goes into a store that holds it and, band by band, the result; an ImageBitmap is closed at once.
  const store = await openStore(source, want.keep, want.store);
  if (source instanceof ImageBitmap) source.close();
  try {
    const tiles = await tileLoop(id, store, w0, h0, ys, xs, want);
    if (tiles === null) {
      store.abort();
      return null;
    }
    return {tiles, result: store.finish(want.keep)};
  } catch (e) {
    store.abort();
    throw e;
  }
}

async function tileLoop(id, store, w0, h0, ys, xs, want) {
  const {axisWindows, axisSums, padIndex, toByte} = tiling;
  const {tile} = info;
  const padH = Math.max(0, tile - h0), padW = Math.max(0, tile - w0);
  const mode = h0 > padH && w0 > padW ? 'reflect' : 'symmetric';
  const wy = axisWindows(ys, tile), wx = axisWindows(xs, tile);
  const sy = axisSums(ys, wy, tile, h0), sx = axisSums(xs, wx, tile, w0);
  const plane = tile * tile;
  const input = new Float32Array(3 * plane);
  const acc = new Float32Array(tile * w0 * 3);  // image rows [bandTop, bandTop + tile)
  const alpha = new Uint8Array(tile * w0);  // the source's alpha over the same rows
  const chunk = new ImageData(w0, Math.min(ROWS_AT_ONCE, h0));  // finished rows on their way out
  const bytes = chunk.data;
  const preview = want.preview ? previewMaker(w0, h0, want.preview, (y, rows, data) => {
    postMessage({type: 'preview', id, y, rows, data: data.buffer}, [data.buffer]);
  }) : null;
  const xmap = new Int32Array(tile);
  const total = ys.length * xs.length;
  let done = 0;
  let bandTop = 0;
  for (let iy = 0; iy < ys.length; iy++) {
    const y0 = ys[iy];
    if (y0 > bandTop) {  // shift the band so that it starts at this tile row
      const shift = (y0 - bandTop) * w0 * 3;
      acc.copyWithin(0, shift);
      acc.fill(0, acc.length - shift);
      alpha.copyWithin(0, (y0 - bandTop) * w0);
      bandTop = y0;
    }
    const rows = Math.min(tile, h0 - y0);  // image rows this tile row covers (fewer where it is padded)
    for (let ix = 0; ix < xs.length; ix++) {
      if (cancelled.has(id)) return null;
      const x0 = xs[ix], cols = Math.min(tile, w0 - x0);
      // the source pixels this tile reads: itself, or the whole side that is shorter than a tile (padded)
      const rx = padW ? 0 : x0, ry = padH ? 0 : y0;
      const src = store.read(rx, ry, padW ? w0 : tile, padH ? h0 : tile);
      const data = src.data;
      for (let c = 0; c < tile; c++) xmap[c] = (padIndex(x0 + c, w0, mode) - rx) * 4;
      for (let r = 0; r < tile; r++) {
        const row = src.offset + (padIndex(y0 + r, h0, mode) - ry) * src.stride;
        const q0 = r * tile;
        for (let c = 0; c < tile; c++) {
          const p = row + xmap[c];
          input[q0 + c] = data[p] / 255;
          input[plane + q0 + c] = data[p + 1] / 255;
          input[2 * plane + q0 + c] = data[p + 2] / 255;
        }
        if (r < rows) {
          for (let c = 0; c < cols; c++) alpha[r * w0 + x0 + c] = data[row + xmap[c] + 3];
        }
      }
      await runTile(input, tile, (out) => {
        const wyr = wy[iy], wxc = wx[ix];
        for (let r = 0; r < rows; r++) {
          const a0 = (r * w0 + x0) * 3, q0 = r * tile;
          for (let c = 0; c < cols; c++) {
            const q = q0 + c, a = a0 + c * 3, weight = wyr[r] * wxc[c];
            const v0 = out[q], v1 = out[plane + q], v2 = out[2 * plane + q];
            if (!Number.isFinite(v0 + v1 + v2)) {
              throw new Error('the model gave non-finite values (NaN or inf): it cannot be used for this photo');
            }
            acc[a] += v0 * weight;
            acc[a + 1] += v1 * weight;
            acc[a + 2] += v2 * weight;
          }
        }
      });
      done++;
      postMessage({type: 'progress', id, done, total});
      await nextTask();  // let a 'cancel' message in
    }
    // rows above the next tile row's start are final: normalise, convert and hand them on, a few at a time
    const finalTo = Math.min(iy + 1 < ys.length ? ys[iy + 1] : h0, h0);
    for (let top = bandTop; top < finalTo; top += chunk.height) {
      const n = Math.min(chunk.height, finalTo - top);
      for (let r = 0; r < n; r++) {
        const y = top + r, b = (y - bandTop) * w0;
        for (let x = 0; x < w0; x++) {
          const norm = sy[y] * sx[x], a = (b + x) * 3, o = (r * w0 + x) * 4;
          bytes[o] = toByte(acc[a] / norm);
          bytes[o + 1] = toByte(acc[a + 1] / norm);
          bytes[o + 2] = toByte(acc[a + 2] / norm);
          bytes[o + 3] = alpha[b + x];
        }
        if (preview) preview.add(y, bytes, r * w0 * 4);
      }
      store.write(chunk, top, n);  // over source rows that no later tile reads
      if (want.rows) {
        const copy = bytes.slice(0, n * w0 * 4);
        postMessage({type: 'rows', id, y: top, rows: n, data: copy.buffer}, [copy.buffer]);
      }
    }
    if (preview) preview.send();
  }
  return total;
}

self.onmessage = (e) => {
  const m = e.data;
  if (m.type === 'cancel') {
    cancelled.add(m.id);
  } else if (m.type === 'load') {
    load(m).then((i) => postMessage({type: 'loaded', info: i}),
                 (err) => postMessage({type: 'error', message: message(err)}));
  } else if (m.type === 'close') {
    // free the model first: its thread pool's threads exit, so that terminating this worker does not wait for them
    queue = queue.then(() => {
      if (model) model.delete();
      model = null;
      postMessage({type: 'closed'});
    });
  } else if (m.type === 'run') {
    queue = queue.then(async () => {
      try {
        const r = cancelled.has(m.id) ? null : await run(m.id, m.source, m);
        if (r === null) postMessage({type: 'cancelled', id: m.id});
        else postMessage({type: 'done', id: m.id, ...r}, r.result?.bitmap ? [r.result.bitmap] : []);
      } catch (err) {
        postMessage({type: 'error', id: m.id, message: message(err)});
      } finally {
        cancelled.delete(m.id);
        if (m.source instanceof ImageBitmap) m.source.close();
      }
    });
  }
};
