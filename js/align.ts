/**
 * AlignmentView: a Gromov–Wasserstein coupling between two modalities as a heatmap, both spaces as
 * 2-D embeddings with linked highlighting (hover a point: its coupled mass lights up in the other
 * panel), the label-transfer confusion matrix and scores, and (live mode) feature edits.
 */
import type { AnyModel, RenderProps } from "@anywidget/types";
import { schemeTableau10, interpolateViridis } from "d3-scale-chromatic";
import { decodeArray, type WireArray } from "./lib/codec";
import { Coalescer } from "./lib/coalesce";
import { control, Disposer, h, rgbOf, signed } from "./lib/dom";
import { connect, type KeyTable } from "./lib/protocol";
import "./align.css";

export interface AlignState {
  names: string[];
  live: boolean;
  coupling: WireArray | null;
  embed_a: WireArray | null;
  embed_b: WireArray | null;
  labels_a: WireArray | null;
  labels_b: WireArray | null;
  index_a: WireArray | null;
  index_b: WireArray | null;
  class_names: string[];
  confusion: WireArray | null;
  scores: Record<string, number | boolean>;
  baseline_scores: Record<string, number | boolean>;
  epsilon: number;
  feature_names: string[];
  ablated: number[];
  steer_feature: number;
  steer_alpha: number;
  steer_max: number;
  busy: boolean;
  error: string;
  rev: number;
  seq: number;
  origin: string;
}

/** Every synced key the view reads (the compiler checks it against AlignState). */
const KEYS: KeyTable<AlignState> = {
  names: true, live: true, coupling: true, embed_a: true, embed_b: true, labels_a: true, labels_b: true,
  index_a: true, index_b: true, class_names: true, confusion: true, scores: true, baseline_scores: true,
  epsilon: true, feature_names: true, ablated: true, steer_feature: true, steer_alpha: true, steer_max: true,
  busy: true, error: true, rev: true, seq: true, origin: true,
};

/** How many coupled points a hover highlights at most, and the share of the top mass they need. */
export const MAX_HIGHLIGHT = 25;
export const MIN_SHARE = 0.1;

/** The coupling's row (from A) or column (from B) for one point: weights over the other side. */
export function coupledWeights(T: ArrayLike<number>, nA: number, nB: number, side: "a" | "b", i: number): Float32Array {
  if (side === "a") {
    const out = new Float32Array(nB);
    for (let j = 0; j < nB; j++) out[j] = T[i * nB + j];
    return out;
  }
  const out = new Float32Array(nA);
  for (let r = 0; r < nA; r++) out[r] = T[r * nB + i];
  return out;
}

/** Indices of the points receiving the most mass (≥ MIN_SHARE of the top one), largest first. */
export function topCoupled(w: ArrayLike<number>, max = MAX_HIGHLIGHT, minShare = MIN_SHARE): number[] {
  let top = 0;
  for (let j = 0; j < w.length; j++) top = Math.max(top, w[j]);
  if (!(top > 0)) return [];
  const idx: number[] = [];
  for (let j = 0; j < w.length; j++) if (w[j] >= minShare * top) idx.push(j);
  idx.sort((a, b) => w[b] - w[a] || a - b);
  return idx.slice(0, max);
}

/** A uniform-scale map from embedding coordinates to canvas pixels (CSS px), with padding. */
export interface Frame {
  ox: number;
  oy: number;
  k: number;
}

export function frameFor(xy: ArrayLike<number>, n: number, size: number, pad = 10): Frame {
  let x0 = Infinity;
  let x1 = -Infinity;
  let y0 = Infinity;
  let y1 = -Infinity;
  for (let i = 0; i < n; i++) {
    x0 = Math.min(x0, xy[2 * i]);
    x1 = Math.max(x1, xy[2 * i]);
    y0 = Math.min(y0, xy[2 * i + 1]);
    y1 = Math.max(y1, xy[2 * i + 1]);
  }
  if (!Number.isFinite(x0)) return { ox: size / 2, oy: size / 2, k: 1 };
  const span = Math.max(x1 - x0, y1 - y0, 1e-9);
  const k = (size - 2 * pad) / span;
  // centre the cloud: pixel = (ox + k x, oy - k y)
  const ox = size / 2 - k * (x0 + x1) / 2;
  const oy = size / 2 + k * (y0 + y1) / 2;
  return { ox, oy, k };
}

/** Index of the point nearest to pixel (px, py) within `radius` px, or -1. */
export function nearestPoint(xy: ArrayLike<number>, n: number, f: Frame, px: number, py: number, radius = 8): number {
  let best = -1;
  let bestD = radius * radius;
  for (let i = 0; i < n; i++) {
    const dx = f.ox + f.k * xy[2 * i] - px;
    const dy = f.oy - f.k * xy[2 * i + 1] - py;
    const d = dx * dx + dy * dy;
    if (d <= bestD) {
      bestD = d;
      best = i;
    }
  }
  return best;
}

const SIZE = 240;

function labelColor(c: number): string {
  return c < 0 ? "#9e9e9e" : schemeTableau10[c % schemeTableau10.length];
}

function fmt(v: number | boolean | undefined): string {
  if (v === undefined) return "—";
  if (typeof v === "boolean") return v ? "yes" : "no";
  return Number.isInteger(v) ? String(v) : v.toFixed(3);
}

const SCORE_ROWS: Array<[string, string, "up" | "down" | ""]> = [
  ["label_transfer_argmax", "label transfer (argmax)", "up"],
  ["label_transfer_barycentric", "label transfer (mass vote)", "up"],
  ["foscttm", "FOSCTTM", "down"],
  ["recall@1", "recall@1", "up"],
  ["recall@5", "recall@5", "up"],
  ["recall@10", "recall@10", "up"],
  ["gw_cost", "GW cost", ""],
  ["n_iter", "iterations", ""],
  ["seconds", "seconds", ""],
];

interface Edits {
  ablated: number[];
  steer_feature: number;
  steer_alpha: number;
  epsilon: number;
}

/** Render an AlignmentView into `el`; returns the cleanup that removes every listener. */
function render({ model, el }: Pick<RenderProps<AlignState>, "model" | "el">): () => void {
  const d = new Disposer();
  const conn = connect(model, el, d, KEYS, (changed) => update(changed));
  const { viewId } = conn;

  // ---- local control state (authoritative while a request is in flight)
  let ablated = new Set<number>(model.get("ablated"));
  let steerFeature = model.get("steer_feature");
  let steerAlpha = model.get("steer_alpha");
  let epsilon = model.get("epsilon");
  let selected = steerFeature >= 0 ? steerFeature : 0;

  const co = new Coalescer<Edits>((e, seq) => {
    conn.send({ type: "edit", seq, origin: viewId, ...e });
  });
  const request = (): void => {
    if (conn.offline()) return; // a page without a kernel: the saved state stays, with the reason
    root.classList.add("sw-busy");
    status.textContent = "aligning…";
    co.push({ ablated: [...ablated].sort((a, b) => a - b), steer_feature: steerFeature, steer_alpha: steerAlpha, epsilon });
  };

  // ---- skeleton
  const root = h("div", { class: "sw-align sw-widget", "data-view": viewId });
  const title = h("div", { class: "sw-title" });
  const error = h("div", { class: "sw-error", role: "alert" });
  const mkCanvas = (cls: string, label: string): HTMLCanvasElement =>
    h("canvas", { class: cls, width: SIZE, height: SIZE, "aria-label": label, style: `width:${SIZE}px;height:${SIZE}px` });
  const heat = mkCanvas("sw-heat", "coupling heatmap");
  const canA = mkCanvas("sw-embed sw-embed-a", "embedding of modality A");
  const canB = mkCanvas("sw-embed sw-embed-b", "embedding of modality B");
  const titleHeat = h("h4", {}, "coupling");
  const titleA = h("h4", {});
  const titleB = h("h4", {});
  const hoverText = h("div", { class: "sw-hover-text", "aria-live": "polite" });
  const legend = h("div", { class: "sw-legend" });
  const confusion = h("table", { class: "sw-confusion", "aria-label": "label transfer confusion matrix" });
  const confTitle = h("h4", {}, "label transfer");
  const scores = h("table", { class: "sw-scores", "aria-label": "scores" });
  // controls
  const epsInput = control(
    h("input", { type: "number", class: "sw-epsilon", min: 0, step: "any", "aria-label": "epsilon" }),
  );
  const featSelect = control(h("select", { class: "sw-feature", "aria-label": "feature" }));
  const ablateBox = control(h("input", { type: "checkbox", class: "sw-ablate", "aria-label": "ablate feature" }));
  const steerSlider = control(h("input", { type: "range", class: "sw-steer", "aria-label": "steer feature", value: 0 }));
  const steerValue = h("span", { class: "sw-steer-value" });
  const reset = control(h("button", { type: "button", class: "sw-reset" }, "reset edits"));
  const editText = h("div", { class: "sw-edit-text" });
  const status = h("span", { class: "sw-status", "aria-live": "polite" });
  const editPanel = h("div", { class: "sw-edit-panel" }, undefined, [
    h("label", {}, undefined, [h("span", {}, "feature "), featSelect]),
    h("label", {}, undefined, [ablateBox, h("span", {}, " ablate")]),
    h("label", { class: "sw-steer-label" }, undefined, [h("span", {}, "steer "), steerSlider, steerValue]),
    reset,
    editText,
  ]);
  const controls = h("div", { class: "sw-controls" }, undefined, [
    h("label", {}, undefined, [h("span", {}, "ε "), epsInput]),
    editPanel,
    status,
  ]);
  root.append(
    title,
    error,
    controls,
    h("div", { class: "sw-body" }, undefined, [
      h("section", { class: "sw-panel" }, undefined, [titleHeat, heat]),
      h("section", { class: "sw-panel" }, undefined, [titleA, canA]),
      h("section", { class: "sw-panel" }, undefined, [titleB, canB]),
      h("section", { class: "sw-panel sw-side" }, undefined, [confTitle, confusion, scores]),
    ]),
    h("div", { class: "sw-footer" }, undefined, [legend, hoverText]),
  );
  el.appendChild(root);
  d.add(() => root.remove());

  // ---- data (decoded once per revision)
  let T: ArrayLike<number> = new Float32Array(0);
  let nA = 0;
  let nB = 0;
  let xyA: ArrayLike<number> = new Float32Array(0);
  let xyB: ArrayLike<number> = new Float32Array(0);
  let labA: ArrayLike<number> = new Int32Array(0);
  let labB: ArrayLike<number> = new Int32Array(0);
  let frameA: Frame = { ox: 0, oy: 0, k: 1 };
  let frameB: Frame = { ox: 0, oy: 0, k: 1 };
  let hover: { side: "a" | "b"; i: number } | null = null;

  function decode(): void {
    const wire = model.get("coupling");
    T = decodeArray(wire) ?? new Float32Array(0);
    nA = wire?.shape[0] ?? 0;
    nB = wire?.shape[1] ?? 0;
    xyA = decodeArray(model.get("embed_a")) ?? new Float32Array(0);
    xyB = decodeArray(model.get("embed_b")) ?? new Float32Array(0);
    labA = decodeArray(model.get("labels_a")) ?? new Int32Array(nA).fill(-1);
    labB = decodeArray(model.get("labels_b")) ?? new Int32Array(nB).fill(-1);
    frameA = frameFor(xyA, nA, SIZE);
    frameB = frameFor(xyB, nB, SIZE);
    for (const [c, f] of [
      [canA, frameA],
      [canB, frameB],
    ] as const) {
      c.dataset.transform = `${f.ox},${f.oy},${f.k}`;
    }
    if (hover && hover.i >= (hover.side === "a" ? nA : nB)) hover = null;
  }

  function context(c: HTMLCanvasElement): CanvasRenderingContext2D | null {
    const dpr = window.devicePixelRatio || 1;
    const px = Math.round(SIZE * dpr);
    if (c.width !== px) {
      c.width = px;
      c.height = px;
    }
    const ctx = c.getContext("2d");
    if (ctx) ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    return ctx;
  }

  function drawHeat(): void {
    heat.dataset.rows = String(nA);
    heat.dataset.cols = String(nB);
    const ctx = context(heat);
    if (!ctx || nA === 0 || nB === 0) return;
    let top = 0;
    for (let i = 0; i < T.length; i++) top = Math.max(top, T[i]);
    const off = document.createElement("canvas");
    off.width = nB;
    off.height = nA;
    const octx = off.getContext("2d");
    if (!octx) return;
    const img = octx.createImageData(nB, nA);
    const lut = Array.from({ length: 256 }, (_, k) => rgbOf(interpolateViridis(k / 255)));
    for (let i = 0; i < T.length; i++) {
      const v = top > 0 ? Math.sqrt(T[i] / top) : 0;
      const [r, g, b] = lut[Math.min(255, Math.round(v * 255))];
      img.data[4 * i] = r;
      img.data[4 * i + 1] = g;
      img.data[4 * i + 2] = b;
      img.data[4 * i + 3] = 255;
    }
    octx.putImageData(img, 0, 0);
    ctx.clearRect(0, 0, SIZE, SIZE);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(off, 0, 0, SIZE, SIZE);
    // label blocks along the edges
    const band = (labs: ArrayLike<number>, n: number, vertical: boolean): void => {
      for (let i = 0; i < n; i++) {
        ctx.fillStyle = labelColor(labs[i]);
        const a = (i / n) * SIZE;
        const w = Math.max(1, SIZE / n);
        if (vertical) ctx.fillRect(0, a, 3, w);
        else ctx.fillRect(a, SIZE - 3, w, 3);
      }
    };
    band(labA, nA, true);
    band(labB, nB, false);
    if (hover) {
      ctx.strokeStyle = "#ff5252";
      ctx.lineWidth = 1;
      if (hover.side === "a") ctx.strokeRect(0, (hover.i / nA) * SIZE, SIZE, Math.max(1, SIZE / nA));
      else ctx.strokeRect((hover.i / nB) * SIZE, 0, Math.max(1, SIZE / nB), SIZE);
    }
  }

  function drawEmbed(c: HTMLCanvasElement, xy: ArrayLike<number>, labs: ArrayLike<number>, n: number, f: Frame, side: "a" | "b"): void {
    // highlighted points: the hovered one on its own side, its coupled mass on the other
    let weights: Float32Array | null = null;
    let top: number[] = [];
    let self = -1;
    if (hover && hover.side === side) self = hover.i;
    if (hover && hover.side !== side) {
      weights = coupledWeights(T, nA, nB, hover.side, hover.i);
      top = topCoupled(weights);
    }
    c.dataset.highlight = top.join(",");
    c.dataset.hover = String(self);
    const ctx = context(c);
    if (!ctx) return;
    ctx.clearRect(0, 0, SIZE, SIZE);
    let wmax = 0;
    if (weights) for (let j = 0; j < weights.length; j++) wmax = Math.max(wmax, weights[j]);
    for (let i = 0; i < n; i++) {
      const x = f.ox + f.k * xy[2 * i];
      const y = f.oy - f.k * xy[2 * i + 1];
      ctx.globalAlpha = weights ? 0.15 + 0.85 * Math.sqrt(wmax > 0 ? weights[i] / wmax : 0) : hover ? 0.35 : 0.85;
      ctx.fillStyle = labelColor(labs[i]);
      ctx.beginPath();
      ctx.arc(x, y, 2.5, 0, 2 * Math.PI);
      ctx.fill();
    }
    ctx.globalAlpha = 1;
    const ring = getComputedStyle(root).getPropertyValue("--jp-ui-font-color0").trim() || "#000";
    ctx.strokeStyle = ring;
    ctx.lineWidth = 1.5;
    const mark = (i: number, r: number): void => {
      ctx.beginPath();
      ctx.arc(f.ox + f.k * xy[2 * i], f.oy - f.k * xy[2 * i + 1], r, 0, 2 * Math.PI);
      ctx.stroke();
    };
    for (const j of top) mark(j, 4.5);
    if (self >= 0) {
      ctx.strokeStyle = "#ff5252";
      mark(self, 6);
    }
  }

  function drawAll(): void {
    drawHeat();
    drawEmbed(canA, xyA, labA, nA, frameA, "a");
    drawEmbed(canB, xyB, labB, nB, frameB, "b");
    const names = model.get("names");
    if (!hover) hoverText.textContent = "hover a point to see where its mass goes";
    else {
      const idx = decodeArray(model.get(hover.side === "a" ? "index_a" : "index_b"));
      const other = hover.side === "a" ? canB : canA;
      const n = other.dataset.highlight ? other.dataset.highlight.split(",").length : 0;
      const nm = names[hover.side === "a" ? 0 : 1] ?? hover.side;
      hoverText.textContent = `${nm} point #${idx?.[hover.i] ?? hover.i}: ${n} coupled point${n === 1 ? "" : "s"} highlighted`;
    }
  }

  function renderTables(): void {
    const cls = model.get("class_names");
    const cm = decodeArray(model.get("confusion"));
    const names = model.get("names");
    confTitle.textContent = `label transfer: true ${names[0] ?? "A"} label × label from ${names[1] ?? "B"}`;
    if (!cm || cls.length === 0) {
      confusion.replaceChildren();
      confTitle.hidden = true;
    } else {
      confTitle.hidden = false;
      const c = cls.length;
      let max = 1;
      for (let i = 0; i < cm.length; i++) max = Math.max(max, cm[i]);
      const head = h("tr", {}, undefined, [h("th", {}), ...cls.map((n) => h("th", { scope: "col", title: n }, n))]);
      const rows = cls.map((n, i) =>
        h("tr", {}, undefined, [
          h("th", { scope: "row", title: n }, n),
          ...cls.map((_, j) =>
            h(
              "td",
              {
                class: i === j ? "sw-diag" : "",
                "data-count": cm[i * c + j],
                style: `--w:${(cm[i * c + j] / max).toFixed(3)}`,
              },
              String(cm[i * c + j]),
            ),
          ),
        ]),
      );
      confusion.replaceChildren(h("thead", {}, undefined, [head]), h("tbody", {}, undefined, rows));
    }
    const cur = model.get("scores");
    const base = model.get("baseline_scores");
    const edited = model.get("live") && (model.get("ablated").length > 0 || (model.get("steer_feature") >= 0 && model.get("steer_alpha") !== 0));
    const head = h("tr", {}, undefined, [
      h("th", {}, "score"),
      h("th", {}, edited ? "edited" : "value"),
      ...(edited ? [h("th", {}, "baseline"), h("th", {}, "Δ")] : []),
    ]);
    const rows = SCORE_ROWS.filter(([k]) => k in cur).map(([k, label, good]) => {
      const v = cur[k];
      const b = base[k];
      const cells = [h("th", { scope: "row" }, label), h("td", { "data-score": k, "data-value": String(v) }, fmt(v))];
      if (edited) {
        cells.push(h("td", {}, fmt(b)));
        const delta = typeof v === "number" && typeof b === "number" ? v - b : 0;
        const better = good === "up" ? delta > 1e-9 : good === "down" ? delta < -1e-9 : false;
        const worse = good === "up" ? delta < -1e-9 : good === "down" ? delta > 1e-9 : false;
        cells.push(h("td", { class: better ? "sw-up" : worse ? "sw-down" : "" }, good ? signed(delta) : ""));
      }
      return h("tr", {}, undefined, cells);
    });
    scores.replaceChildren(h("thead", {}, undefined, [head]), h("tbody", {}, undefined, rows));
    if (cur.converged === false) scores.dataset.converged = "no";
    else scores.dataset.converged = "yes";
    legend.replaceChildren(
      ...cls.map((n, i) =>
        h("span", { class: "sw-legend-item" }, undefined, [
          h("span", { class: "sw-swatch", style: `background:${labelColor(i)}` }),
          h("span", {}, n),
        ]),
      ),
    );
  }

  function showControls(): void {
    const live = model.get("live");
    editPanel.hidden = !live;
    if (document.activeElement !== epsInput) epsInput.value = String(epsilon);
    const feats = model.get("feature_names");
    if (featSelect.options.length !== feats.length) {
      featSelect.replaceChildren(...feats.map((n, i) => h("option", { value: i }, n)));
    }
    if (selected >= feats.length) selected = 0;
    featSelect.value = String(selected);
    ablateBox.checked = ablated.has(selected);
    const max = model.get("steer_max");
    steerSlider.min = String(-max);
    steerSlider.max = String(max);
    steerSlider.step = String(max / 50);
    const alpha = steerFeature === selected ? steerAlpha : 0;
    if (document.activeElement !== steerSlider || !co.busy) steerSlider.value = String(alpha);
    steerValue.textContent = signed(alpha, 2);
    const parts: string[] = [];
    if (ablated.size) parts.push(`ablated: ${[...ablated].sort((a, b) => a - b).map((i) => feats[i] ?? String(i)).join(", ")}`);
    if (steerFeature >= 0 && steerAlpha !== 0) parts.push(`steered: ${feats[steerFeature] ?? steerFeature} ${signed(steerAlpha, 2)}`);
    editText.textContent = parts.join(" · ");
  }

  function syncFromModel(): void {
    ablated = new Set<number>(model.get("ablated"));
    steerFeature = model.get("steer_feature");
    steerAlpha = model.get("steer_alpha");
    epsilon = model.get("epsilon");
    showControls();
  }

  function renderAll(): void {
    const names = model.get("names");
    title.textContent = `AlignmentView · ${names[0] ?? "A"} ↔ ${names[1] ?? "B"} (Gromov–Wasserstein)`;
    titleA.textContent = `${names[0] ?? "A"} (PCA)`;
    titleB.textContent = `${names[1] ?? "B"} (PCA)`;
    decode();
    titleHeat.textContent = `coupling ${nA} × ${nB} (rows ${names[0] ?? "A"}, by label)`;
    drawAll();
    renderTables();
    const err = model.get("error");
    error.textContent = err;
    error.hidden = !err;
    root.dataset.rev = String(model.get("rev"));
  }

  function setBusy(): void {
    const busy = model.get("busy") || co.busy;
    root.classList.toggle("sw-busy", busy);
    root.dataset.busy = busy ? "true" : "false";
    status.textContent = busy ? "aligning…" : "";
  }

  // ---- wiring
  // one call per applied update, with every key of it in place (lib/protocol.ts)
  function update(changed: ReadonlySet<keyof AlignState>): void {
    if (changed.has("feature_names") || changed.has("steer_max")) showControls();
    if (changed.size === 1 && changed.has("busy")) {
      setBusy(); // Python starting an alignment: nothing else to redraw
      return;
    }
    const state = conn.answer(co);
    if (state === "stale") return; // an answer to an older request of ours
    if (state === "idle") syncFromModel();
    renderAll();
    setBusy();
  }

  const pointer = (c: HTMLCanvasElement, side: "a" | "b") => (ev: MouseEvent) => {
    const r = c.getBoundingClientRect();
    const scale = r.width > 0 ? SIZE / r.width : 1;
    const px = (ev.clientX - r.left) * scale;
    const py = (ev.clientY - r.top) * scale;
    const i = side === "a" ? nearestPoint(xyA, nA, frameA, px, py) : nearestPoint(xyB, nB, frameB, px, py);
    const next = i >= 0 ? { side, i } : null;
    if (next?.side === hover?.side && next?.i === hover?.i) return;
    hover = next;
    drawAll();
  };
  d.listen(canA, "mousemove", pointer(canA, "a"));
  d.listen(canB, "mousemove", pointer(canB, "b"));
  d.listen(heat, "mousemove", (ev) => {
    const r = heat.getBoundingClientRect();
    if (r.height <= 0 || nA === 0) return;
    const i = Math.min(nA - 1, Math.max(0, Math.floor(((ev.clientY - r.top) / r.height) * nA)));
    if (hover?.side === "a" && hover.i === i) return;
    hover = { side: "a", i };
    drawAll();
  });
  for (const c of [canA, canB, heat]) {
    d.listen(c, "mouseleave", () => {
      hover = null;
      drawAll();
    });
  }
  d.listen(epsInput, "change", () => {
    const v = Number(epsInput.value);
    if (!Number.isFinite(v) || v <= 0) {
      epsInput.value = String(epsilon);
      return;
    }
    epsilon = v;
    request();
  });
  d.listen(featSelect, "change", () => {
    selected = Number(featSelect.value);
    showControls();
  });
  d.listen(ablateBox, "change", () => {
    if (ablateBox.checked) ablated.add(selected);
    else ablated.delete(selected);
    showControls();
    request();
  });
  d.listen(steerSlider, "input", () => {
    steerFeature = selected;
    steerAlpha = Number(steerSlider.value);
    if (steerAlpha === 0) steerFeature = -1;
    steerValue.textContent = signed(steerAlpha, 2);
    request();
  });
  d.listen(steerSlider, "dblclick", () => {
    steerFeature = -1;
    steerAlpha = 0;
    showControls();
    request();
  });
  d.listen(reset, "click", () => {
    ablated.clear();
    steerFeature = -1;
    steerAlpha = 0;
    showControls();
    request();
  });

  syncFromModel();
  renderAll();
  setBusy();
  return () => d.dispose();
}

export default { render };

export type { AnyModel };
