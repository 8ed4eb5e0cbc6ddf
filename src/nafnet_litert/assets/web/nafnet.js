// nafnet.js: deblur photos in the browser with a NAFNet LiteRT model (LiteRT.js, WebGPU or WASM), tiled exactly as
// nafnet-litert's Python tiler does it (restore/tiling.py): the same tile positions, the same raised-cosine
// blending over the overlap, reflect padding for images smaller than a tile.
//
//   import {loadDeblurrer} from './nafnet.js';
//   const deblurrer = await loadDeblurrer('model_fp32.tflite', {accelerator: 'auto'});
//   const sharp = await deblurrer.deblur(imageData, (done, total) => ...);   // ImageData in, ImageData out
//   deblurrer.info  // {backend, fullyAccelerated, modelBytes, tile, overlap, threads}
//   deblurrer.delete();

import {loadLiteRt, loadAndCompile, Tensor} from '@litertjs/core';

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

function axisWindows(starts, tile) {
  return starts.map((s, i) => {
    const left = i > 0 ? starts[i - 1] + tile - s : 0;
    const right = i + 1 < starts.length ? s + tile - starts[i + 1] : 0;
    return rampWindow(tile, Math.max(0, left), Math.max(0, right));
  });
}

/** numpy's pad modes, as an index map: 'reflect' mirrors without repeating the edge, 'symmetric' with it. */
function padIndex(i, n, mode) {
  if (n === 1) return 0;
  const period = mode === 'reflect' ? 2 * (n - 1) : 2 * n;
  let j = i % period;
  if (mode === 'reflect') return j < n ? j : period - j;
  return j < n ? j : period - 1 - j;
}

let runtime = null;

async function ensureRuntime(wasmDir, threads) {
  if (!runtime) runtime = loadLiteRt(wasmDir, threads > 1 ? {threads: true} : {});
  return runtime;
}

/** 'webgpu' when the browser has a WebGPU adapter, else 'wasm'. */
export async function pickBackend() {
  if (!('gpu' in navigator)) return 'wasm';
  try {
    return (await navigator.gpu.requestAdapter()) !== null ? 'webgpu' : 'wasm';
  } catch {
    return 'wasm';
  }
}

export class Deblurrer {
  constructor(model, info) {
    this.model = model;
    this.info = info;
  }

  /** Deblur an ImageData of any size; `onProgress(done, total)` after each tile. Alpha is kept. */
  async deblur(image, onProgress) {
    const {tile, overlap} = this.info;
    const w0 = image.width, h0 = image.height;
    const padH = Math.max(0, tile - h0), padW = Math.max(0, tile - w0);
    const mode = h0 > padH && w0 > padW ? 'reflect' : 'symmetric';
    const h = h0 + padH, w = w0 + padW;
    const src = image.data;
    const ys = positions(h, tile, overlap), xs = positions(w, tile, overlap);
    const wy = axisWindows(ys, tile), wx = axisWindows(xs, tile);
    const acc = new Float64Array(h0 * w0 * 3);
    const wsum = new Float64Array(h0 * w0);
    const plane = tile * tile;
    const input = new Float32Array(3 * plane);
    const total = ys.length * xs.length;
    let done = 0;
    for (let iy = 0; iy < ys.length; iy++) {
      for (let ix = 0; ix < xs.length; ix++) {
        const y0 = ys[iy], x0 = xs[ix];
        for (let r = 0; r < tile; r++) {
          const sy = padIndex(y0 + r, h0, mode);
          for (let c = 0; c < tile; c++) {
            const sx = padIndex(x0 + c, w0, mode);
            const p = (sy * w0 + sx) * 4;
            const q = r * tile + c;
            input[q] = src[p] / 255;
            input[plane + q] = src[p + 1] / 255;
            input[2 * plane + q] = src[p + 2] / 255;
          }
        }
        const tensor = new Tensor(input, [1, 3, tile, tile]);
        let outputs;
        try {
          outputs = await this.model.run(tensor);
        } finally {
          tensor.delete();
        }
        const out = outputs[0];
        let data;
        try {
          data = await out.data();
        } finally {
          for (const t of outputs) t.delete();
        }
        for (let r = 0; r < tile; r++) {
          const y = y0 + r;
          if (y >= h0) break;
          for (let c = 0; c < tile; c++) {
            const x = x0 + c;
            if (x >= w0) break;
            const weight = wy[iy][r] * wx[ix][c];
            const q = r * tile + c, o = y * w0 + x;
            acc[o * 3] += data[q] * weight;
            acc[o * 3 + 1] += data[plane + q] * weight;
            acc[o * 3 + 2] += data[2 * plane + q] * weight;
            wsum[o] += weight;
          }
        }
        done++;
        if (onProgress) onProgress(done, total);
      }
    }
    const result = new ImageData(w0, h0);
    const dst = result.data;
    for (let o = 0; o < h0 * w0; o++) {
      for (let k = 0; k < 3; k++) {
        const t = Math.min(1, Math.max(0, acc[o * 3 + k] / wsum[o])) * 255;
        let v = Math.round(t);
        if (v - t === 0.5 && v % 2 === 1) v -= 1; // half to even, as numpy rounds
        dst[o * 4 + k] = v;
      }
      dst[o * 4 + 3] = src[o * 4 + 3];
    }
    return result;
  }

  delete() {
    this.model.delete();
  }
}

/**
 * Load and compile a tile model. `accelerator`: 'auto' (WebGPU when an adapter exists, else WASM), 'webgpu' or
 * 'wasm'. `wasmDir`: where LiteRT.js's wasm files are. WASM uses threads when the page is cross-origin isolated
 * (COOP/COEP headers, as `nafnet-litert serve` sends).
 */
export async function loadDeblurrer(modelUrl, options = {}) {
  const {
    accelerator = 'auto',
    wasmDir = new URL('./litert/core/wasm/', import.meta.url).href,
    overlap = DEFAULT_OVERLAP,
    gpuPrecision = 'fp32',
  } = options;
  const backend = accelerator === 'auto' ? await pickBackend() : accelerator;
  if (!['webgpu', 'wasm'].includes(backend)) throw new Error(`unknown accelerator ${accelerator} (auto, webgpu or wasm)`);
  const isolated = globalThis.crossOriginIsolated === true;
  const threads = options.threads ?? (isolated ? Math.max(1, Math.min(4, navigator.hardwareConcurrency || 1)) : 1);
  await ensureRuntime(wasmDir, backend === 'wasm' ? threads : 1);
  const response = await fetch(modelUrl);
  if (!response.ok) throw new Error(`cannot load the model ${modelUrl} (HTTP ${response.status})`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  const compileOptions = {accelerator: backend};
  if (backend === 'webgpu') compileOptions.gpuOptions = {precision: gpuPrecision};
  else compileOptions.cpuOptions = {numThreads: threads};
  const model = await loadAndCompile(bytes, compileOptions);
  const shape = Array.from(model.getInputDetails()[0].shape);
  if (shape.length !== 4 || shape[1] !== 3 || shape[2] !== shape[3]) {
    model.delete();
    throw new Error(`${modelUrl} is not a square NCHW [1,3,T,T] tile model (input ${JSON.stringify(shape)})`);
  }
  const tile = shape[2];
  const info = {
    backend,
    fullyAccelerated: model.isFullyAccelerated,
    modelBytes: bytes.length,
    tile,
    overlap: Math.min(overlap, Math.floor(tile / 2)),
    threads: backend === 'wasm' ? threads : null,
  };
  return new Deblurrer(model, info);
}
