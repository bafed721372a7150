/**
 * FeatureDashboard view: an SAE's latents as a sortable, searchable, keyboard-navigable list that renders
 * only its visible rows (tens of thousands of latents scroll smoothly); for the selected
 * latent its activation histogram, top-activating inputs (with spatial maps or deviant fields), its
 * effect on the cohort's predictions (ablated or steered) and its correlation with true factors.
 */
import type { AnyModel, RenderProps } from "@anywidget/types";
import { decodeArray, type NumArray, type WireArray } from "./lib/codec";
import { Coalescer } from "./lib/coalesce";
import { control, Disposer, factorRows, h, signed, tokenStrip } from "./lib/dom";
import { connect, type KeyTable } from "./lib/protocol";
import { filterLatents, OVERSCAN, ROW_HEIGHT, visibleRange } from "./lib/virtual";

export { filterLatents, OVERSCAN, ROW_HEIGHT, visibleRange };
import { s, svgRoot } from "./lib/svg";
import "./lib/theme.css";
import "./dashboard.css";

export interface DashboardState {
  site: string;
  n_inputs: number;
  input_kind: string;
  spatial_site: boolean;
  feature_names: string[];
  class_names: string[];
  frequency: WireArray | null;
  max_activation: WireArray | null;
  effect: WireArray | null;
  effect_inputs: number;
  effect_candidates: number;
  effect_pending: boolean;
  progress_done: number;
  progress_total: number;
  progress_what: string;
  n_dead: number;
  sort_by: string;
  /** Input whose prediction `sort_by === "attribution"` attributes. */
  sort_input?: number;
  sort_class: number;
  order: WireArray | null;
  selected: number;
  n_active: number;
  act_hist: WireArray | null;
  act_edges: WireArray | null;
  top_indices: WireArray | null;
  top_values: WireArray | null;
  top_labels: string[];
  top_images: WireArray | null;
  top_maps: WireArray | null;
  field_names: string[];
  field_units: string[];
  top_fields: WireArray | null;
  top_tokens: string[][];
  top_positions: WireArray | null;
  top_field_values: WireArray | null;
  top_field_z: WireArray | null;
  effect_mode: string;
  steer: number;
  steer_max: number;
  effect_class: number;
  effect_hist: WireArray | null;
  effect_edges: WireArray | null;
  effect_flips: number;
  effect_mean: WireArray | null;
  factor_names: string[];
  gt_corr: WireArray | null;
  lab_linked: boolean;
  notice: string;
  error: string;
  rev: number;
  seq: number;
  origin: string;
}

/** Every synced key the view reads (the compiler checks it against DashboardState). */
const KEYS: KeyTable<DashboardState> = {
  site: true, n_inputs: true, input_kind: true, spatial_site: true, feature_names: true, class_names: true,
  frequency: true, max_activation: true, effect: true, effect_inputs: true, effect_candidates: true,
  effect_pending: true, progress_done: true, progress_total: true, progress_what: true, n_dead: true, sort_by: true, sort_input: true,
  sort_class: true, order: true, selected: true, n_active: true, act_hist: true, act_edges: true, top_indices: true,
  top_values: true, top_labels: true, top_images: true, top_maps: true, field_names: true, field_units: true,
  top_fields: true, top_tokens: true, top_positions: true, top_field_values: true, top_field_z: true,
  effect_mode: true, steer: true, steer_max: true, effect_class: true, effect_hist: true, effect_edges: true,
  effect_flips: true, effect_mean: true, factor_names: true, gt_corr: true, lab_linked: true, notice: true,
  error: true, rev: true, seq: true, origin: true,
};

/** What a detail request carries: the latent and how its effect is measured. */
export interface Detail {
  feature: number;
  mode: string;
  steer: number;
  effect_class: number;
}

/** Height the list is drawn at when the page has not laid it out yet (CSS `max-height` of `.sw-flist`). */
const LIST_HEIGHT = 440;

/** New cursor position in a list of `n` rows after `key`; `null` when the key does not move it. */
export function moveCursor(pos: number, key: string, n: number): number | null {
  if (n <= 0) return null;
  const clamp = (p: number): number => Math.min(n - 1, Math.max(0, p));
  switch (key) {
    case "ArrowDown":
      return clamp(pos + 1);
    case "ArrowUp":
      return clamp(pos - 1);
    case "PageDown":
      return clamp(pos + 10);
    case "PageUp":
      return clamp(pos - 10);
    case "Home":
      return 0;
    case "End":
      return n - 1;
    default:
      return null;
  }
}

/** A histogram as SVG bars (log-scaled heights), each bar with `data-count`; signed colours when `signedBins`. */
export function histogram(counts: NumArray, edges: NumArray, label: string, signedBins: boolean): SVGSVGElement {
  const W = 240;
  const H = 56;
  const svg = svgRoot(W, H + 12, label);
  const peak = Math.log1p(Math.max(1, ...Array.from(counts)));
  const bw = W / Math.max(1, counts.length);
  counts.forEach((c, i) => {
    const hgt = (Math.log1p(c) / peak) * H;
    const mid = (edges[i] + edges[i + 1]) / 2;
    const zero = Math.abs(mid) < Math.abs(edges[i + 1] - edges[i]) / 4;
    const cls = !signedBins ? "sw-bin" : zero ? "sw-bin sw-zero" : mid < 0 ? "sw-bin sw-neg" : "sw-bin sw-pos";
    svg.append(s("rect", { x: i * bw + 0.5, y: H - hgt, width: Math.max(1, bw - 1), height: hgt, class: cls, "data-count": c }));
  });
  if (edges.length > 1) {
    svg.append(s("text", { x: 0, y: H + 11, class: "sw-axis" }, edges[0].toFixed(2)));
    svg.append(s("text", { x: W, y: H + 11, class: "sw-axis", "text-anchor": "end" }, edges[edges.length - 1].toFixed(2)));
  }
  return svg;
}

const RGB_OVER = [255, 140, 0];

/** Paint an RGB float image `(3, t, t)` with an optional activation map `(mh, mw)` overlaid. */
function paintExample(canvas: HTMLCanvasElement, rgb: NumArray, t: number, map: NumArray | null, mh: number, mw: number, peak: number): void {
  canvas.width = t;
  canvas.height = t;
  const ctx = canvas.getContext("2d");
  if (!ctx) return;
  const img = ctx.createImageData(t, t);
  const plane = t * t;
  for (let p = 0; p < plane; p++) {
    img.data[p * 4] = Math.min(255, rgb[p] * 255);
    img.data[p * 4 + 1] = Math.min(255, rgb[plane + p] * 255);
    img.data[p * 4 + 2] = Math.min(255, rgb[2 * plane + p] * 255);
    img.data[p * 4 + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  if (!map) return;
  const tmp = document.createElement("canvas");
  tmp.width = mw;
  tmp.height = mh;
  const tctx = tmp.getContext("2d");
  if (!tctx) return;
  const im = tctx.createImageData(mw, mh);
  map.forEach((v, i) => {
    im.data[i * 4] = RGB_OVER[0];
    im.data[i * 4 + 1] = RGB_OVER[1];
    im.data[i * 4 + 2] = RGB_OVER[2];
    im.data[i * 4 + 3] = Math.round(Math.min(1, Math.max(0, v) / peak) * 180);
  });
  tctx.putImageData(im, 0, 0);
  ctx.imageSmoothingEnabled = true;
  ctx.drawImage(tmp, 0, 0, t, t);
}

/** Render a FeatureDashboard into `el`; returns the cleanup that removes every listener. */
function render({ model, el }: Pick<RenderProps<DashboardState>, "model" | "el">): () => void {
  const d = new Disposer();
  const conn = connect(model, el, d, KEYS, (changed) => update(changed));
  const { viewId } = conn;

  // ---- local state (authoritative while a request of this view is in flight)
  let selected = model.get("selected");
  let mode = model.get("effect_mode");
  let steer = model.get("steer");
  let effectClass = model.get("effect_class");
  let cursor = 0; // position in the rendered list

  const co = new Coalescer<Detail>((c, seq) => {
    conn.send({ type: "request", seq, origin: viewId, ...c });
  });
  const request = (): void => {
    if (conn.offline()) return; // a page without a kernel: the saved state stays, with the reason
    root.classList.add("sw-busy");
    co.push({ feature: selected, mode, steer, effect_class: effectClass });
  };

  // ---- skeleton
  const root = h("div", { class: "sw-dash sw-widget", "data-view": viewId });
  const title = h("div", { class: "sw-title" });
  const notice = h("div", { class: "sw-notice", "aria-live": "polite" });
  const error = h("div", { class: "sw-error", role: "alert" });
  const sort = control(h("select", { class: "sw-sort", "aria-label": "sort latents by" }));
  const goto = control(h("input", { class: "sw-goto", type: "number", min: 0, step: 1, "aria-label": "select latent by index" }));
  const search = control(h("input", { class: "sw-search", type: "search", placeholder: "index or name", "aria-label": "search latents by index or name" }));
  const progress = h("progress", { class: "sw-progress", "aria-label": "progress" }) as HTMLProgressElement;
  const progressText = h("span", { class: "sw-progress-text" });
  const progressRow = h("div", { class: "sw-progress-row", role: "status" }, undefined, [progress, progressText]);
  const listInfo = h("div", { class: "sw-list-info" });
  const listHead = h("div", { class: "sw-frow sw-fhead", "aria-hidden": "true" }, undefined, [
    h("span", {}, "latent"),
    h("span", {}, "frequency"),
    h("span", {}, "max"),
    h("span", { class: "sw-effect-head" }, "Δ"),
  ]);
  const list = control(h("div", { class: "sw-flist", role: "listbox", tabindex: 0, "aria-label": "latents" }));
  // virtual list: a spacer as tall as every row, with only the rows in view inside it
  const spacer = h("div", { class: "sw-fspacer", style: "position:relative" });
  list.append(spacer);
  const listPanel = h("section", { class: "sw-list-panel" }, undefined, [
    h("div", { class: "sw-list-controls" }, undefined, [
      h("label", {}, undefined, [h("span", {}, "sort "), sort]),
      h("label", {}, undefined, [h("span", {}, "go to "), goto]),
      h("label", {}, undefined, [h("span", {}, "search "), search]),
    ]),
    progressRow,
    listInfo,
    listHead,
    list,
  ]);
  const featTitle = h("h4", { class: "sw-feature-title" });
  const featStats = h("div", { class: "sw-feature-stats" });
  const actHist = h("div", { class: "sw-act-hist" });
  const examplesTitle = h("h4", {}, "top-activating inputs");
  const examples = h("div", { class: "sw-examples", role: "list", "aria-label": "top-activating inputs" });
  const modeName = `${viewId}-mode`;
  const ablateRadio = control(h("input", { type: "radio", name: modeName, value: "ablate", class: "sw-mode", "aria-label": "ablate" }));
  const steerRadio = control(h("input", { type: "radio", name: modeName, value: "steer", class: "sw-mode", "aria-label": "steer" }));
  const steerSlider = control(h("input", { type: "range", class: "sw-steer", "aria-label": "steering strength" }));
  const steerValue = h("span", { class: "sw-steer-value" });
  const effectClassSel = control(h("select", { class: "sw-effect-class", "aria-label": "class whose change is shown" }));
  const effectTitle = h("h4", {}, "effect on the cohort");
  const effectText = h("div", { class: "sw-effect-text" });
  const effectHist = h("div", { class: "sw-effect-hist" });
  const effectMean = h("div", { class: "sw-effect-mean", role: "list", "aria-label": "mean change per class" });
  const gtTitle = h("h4", {}, "true factors");
  const gt = h("div", { class: "sw-gt", role: "list", "aria-label": "correlation with true factors" });
  const gtPanel = h("div", { class: "sw-gt-panel" }, undefined, [gtTitle, gt]);
  const openLab = control(h("button", { type: "button", class: "sw-open-lab" }, "Open in FeatureLab"));
  root.append(
    h("div", { class: "sw-header" }, undefined, [title, openLab]),
    notice,
    error,
    h("div", { class: "sw-body" }, undefined, [
      listPanel,
      h("section", { class: "sw-detail" }, undefined, [
        featTitle,
        featStats,
        actHist,
        examplesTitle,
        examples,
      ]),
      h("section", { class: "sw-effects" }, undefined, [
        effectTitle,
        h("div", { class: "sw-effect-controls" }, undefined, [
          h("label", {}, undefined, [ablateRadio, h("span", {}, "ablate")]),
          h("label", {}, undefined, [steerRadio, h("span", {}, "steer")]),
          steerSlider,
          steerValue,
          h("label", {}, undefined, [h("span", {}, "class "), effectClassSel]),
        ]),
        effectText,
        effectHist,
        effectMean,
        gtPanel,
      ]),
    ]),
  );
  el.appendChild(root);
  d.add(() => root.remove());

  // ---- feature list (virtual: only the rows in view exist in the DOM)
  let shown: number[] = []; // latent index at each list position (after the search filter)
  let rowEls: HTMLElement[] = []; // the rendered rows, positions rowStart..rowStart + rowEls.length - 1
  let rowStart = 0;
  let freq: NumArray = new Float32Array(0);
  let max: NumArray = new Float32Array(0);
  let eff: NumArray | null = null;
  let maxMax = 1e-9;

  function buildSortOptions(): void {
    const classes = model.get("class_names");
    const opts: Array<[string, string]> = [
      ["frequency", "frequency"],
      ["max_activation", "max activation"],
      ["index", "index"],
    ];
    if (model.get("effect_candidates") > 0 || model.get("effect")) classes.forEach((c, i) => opts.push([`effect:${i}`, `|Δ ${c}| when ablated`]));
    // attribution to one class's prediction on one input (Python computes the order: gradient × activation,
    // the top 16 by their exact ablation effect)
    classes.forEach((c, i) => opts.push([`attribution:${i}`, `attribution to ${c} (input ${model.get("sort_input") ?? 0})`]));
    sort.replaceChildren(...opts.map(([v, t]) => h("option", { value: v }, t)));
    effectClassSel.replaceChildren(...classes.map((c, i) => h("option", { value: i }, c)));
  }

  function makeRow(pos: number): HTMLElement {
    const names = model.get("feature_names");
    const f = shown[pos];
    const dead = freq[f] === 0;
    const e = eff ? eff[f * model.get("class_names").length + model.get("sort_class")] : NaN;
    return h(
      "div",
      {
        class: `sw-frow${dead ? " sw-dead" : ""}`,
        role: "option",
        id: `${viewId}-f${f}`,
        "data-feature": f,
        "data-pos": pos,
        "aria-selected": "false",
        style: `position:absolute;left:0;right:0;top:${pos * ROW_HEIGHT}px;height:${ROW_HEIGHT}px;box-sizing:border-box`,
      },
      undefined,
      [
        h("span", { class: "sw-fname", title: names[f] ?? "" }, names[f] ?? String(f)),
        h("span", { class: "sw-freq", title: `active on ${(freq[f] * 100).toFixed(2)}% of inputs` }, undefined, [
          h("span", { class: "sw-freq-bar", style: `width:${Math.min(100, freq[f] * 100).toFixed(1)}%` }),
          h("span", { class: "sw-freq-value" }, `${(freq[f] * 100).toFixed(1)}%`),
        ]),
        h("span", { class: "sw-max" }, undefined, [
          h("span", { class: "sw-max-bar", style: `width:${((max[f] / maxMax) * 100).toFixed(1)}%` }),
          h("span", { class: "sw-max-value" }, max[f].toFixed(2)),
        ]),
        dead
          ? h("span", { class: "sw-badge", title: "never active on the cohort" }, "dead")
          : h("span", { class: "sw-eff", title: Number.isNaN(e) ? "not computed (outside the effect candidates)" : "" }, Number.isNaN(e) ? "" : signed(e)),
      ],
    );
  }

  /** Render the rows in view (plus overscan); rows already there are reused. */
  function renderRows(): void {
    const viewport = list.clientHeight || LIST_HEIGHT;
    const [start, end] = visibleRange(list.scrollTop, viewport, shown.length);
    if (start === rowStart && end === rowStart + rowEls.length && rowEls.every((r, i) => Number(r.dataset.feature) === shown[start + i])) {
      showSelection();
      return;
    }
    const keep = new Map<number, HTMLElement>();
    rowEls.forEach((r, i) => {
      if (Number(r.dataset.feature) === shown[rowStart + i]) keep.set(rowStart + i, r);
    });
    rowEls = [];
    for (let pos = start; pos < end; pos++) rowEls.push(keep.get(pos) ?? makeRow(pos));
    rowStart = start;
    spacer.replaceChildren(...rowEls);
    showSelection();
  }

  function buildList(): void {
    const names = model.get("feature_names");
    freq = decodeArray(model.get("frequency")) ?? new Float32Array(names.length);
    max = decodeArray(model.get("max_activation")) ?? new Float32Array(names.length);
    eff = decodeArray(model.get("effect"));
    maxMax = 1e-9;
    for (let i = 0; i < max.length; i++) if (max[i] > maxMax) maxMax = max[i];
    const sortClass = model.get("sort_class");
    const byEffect = model.get("sort_by") === "effect";
    const order = decodeArray(model.get("order"));
    const query = search.value;
    shown = filterLatents(order ?? names.map((_, i) => i), names, query);
    spacer.style.height = `${shown.length * ROW_HEIGHT}px`;
    rowEls = [];
    rowStart = 0;
    spacer.replaceChildren();
    const L = names.length;
    const classes = model.get("class_names");
    const effN = model.get("effect_inputs");
    const cand = model.get("effect_candidates");
    listInfo.textContent =
      `${L} latents · ${model.get("n_dead")} dead` +
      (effN && eff ? ` · Δ = mean change of ${classes[sortClass] ?? sortClass} over ${effN} inputs when ablated` + (cand < L ? ` (the ${cand} most frequent latents)` : "") : "") +
      (query.trim() ? ` · ${shown.length} match “${query.trim()}”` : "");
    const by = model.get("sort_by");
    sort.value = byEffect || by === "attribution" ? `${by}:${sortClass}` : by;
    goto.max = String(Math.max(0, L - 1));
    const at = shown.indexOf(selected);
    cursor = at >= 0 ? at : Math.min(cursor, Math.max(0, shown.length - 1));
    renderRows();
  }

  function showSelection(): void {
    rowEls.forEach((r) => {
      const pos = Number(r.dataset.pos);
      const f = shown[pos];
      r.classList.toggle("sw-selected", f === selected);
      r.setAttribute("aria-selected", f === selected ? "true" : "false");
      r.classList.toggle("sw-cursor", pos === cursor);
    });
    const cur = rowEls[cursor - rowStart];
    if (cur) list.setAttribute("aria-activedescendant", cur.id);
    else list.removeAttribute("aria-activedescendant");
    root.dataset.cursor = String(shown[cursor] ?? -1);
  }

  /** Scroll the list so that position `pos` is in view. */
  function reveal(pos: number): void {
    const viewport = list.clientHeight || LIST_HEIGHT;
    const top = pos * ROW_HEIGHT;
    if (top < list.scrollTop) list.scrollTop = top;
    else if (top + ROW_HEIGHT > list.scrollTop + viewport) list.scrollTop = top + ROW_HEIGHT - viewport;
  }

  function moveTo(pos: number): void {
    cursor = pos;
    reveal(pos);
    renderRows();
  }

  function choose(f: number): void {
    if (!Number.isInteger(f)) return;
    selected = f;
    const at = shown.indexOf(f);
    if (at >= 0) {
      cursor = at;
      reveal(at);
      renderRows();
    } else showSelection();
    request();
  }

  // ---- detail views
  function renderDetail(): void {
    const names = model.get("feature_names");
    const f = model.get("selected");
    const n = model.get("n_inputs");
    const nAct = model.get("n_active");
    const freq = decodeArray(model.get("frequency"));
    const max = decodeArray(model.get("max_activation"));
    root.dataset.selected = String(f);
    featTitle.textContent = names[f] ?? `latent ${f}`;
    const dead = nAct === 0;
    featStats.textContent = dead
      ? `dead: never active on the ${n} inputs`
      : `active on ${nAct} of ${n} inputs (${(((freq?.[f] ?? nAct / n) as number) * 100).toFixed(1)}%) · max ${(max?.[f] ?? 0).toFixed(3)}`;
    const counts = decodeArray(model.get("act_hist"));
    const edges = decodeArray(model.get("act_edges"));
    actHist.replaceChildren();
    if (counts && edges && !dead) actHist.append(histogram(counts, edges, `activations of ${names[f] ?? f} where > 0`, false));
    actHist.dataset.feature = String(f);
    renderExamples();
    renderEffect();
    renderGroundTruth();
  }

  function renderExamples(): void {
    const idx = decodeArray(model.get("top_indices")) ?? new Int32Array(0);
    const vals = decodeArray(model.get("top_values")) ?? new Float32Array(0);
    const labels = model.get("top_labels") ?? [];
    const imgs = model.get("top_images");
    const imgData = decodeArray(imgs);
    const mapsWire = model.get("top_maps");
    const maps = decodeArray(mapsWire);
    const fieldNames = model.get("field_names");
    const units = model.get("field_units") ?? [];
    const fieldsWire = model.get("top_fields");
    const fields = decodeArray(fieldsWire);
    const fvals = decodeArray(model.get("top_field_values"));
    const fz = decodeArray(model.get("top_field_z"));
    const m = fieldsWire ? (fieldsWire.shape[1] ?? 0) : 0;
    const toks = model.get("top_tokens") ?? [];
    const posWire = model.get("top_positions");
    const pos = decodeArray(posWire);
    const span = posWire ? (posWire.shape[1] ?? 0) : 0;
    const posPeak = pos ? Math.max(1e-9, ...Array.from(pos, Math.abs)) : 1;
    examples.dataset.feature = String(model.get("selected"));
    examples.dataset.count = String(idx.length);
    if (idx.length === 0) {
      examples.replaceChildren(h("div", { class: "sw-empty" }, "no input activates this latent"));
      return;
    }
    const peak = maps ? Math.max(1e-9, ...Array.from(maps)) : 1;
    examples.replaceChildren(
      ...Array.from(idx, (inputIndex, j) => {
        const caption = `#${inputIndex} · ${vals[j].toFixed(2)}${labels[j] ? ` · ${labels[j]}` : ""}`;
        const item = h("div", { class: "sw-example", role: "listitem", "data-index": inputIndex, "data-value": vals[j] });
        if (imgs && imgData) {
          const t = imgs.shape[2];
          const canvas = h("canvas", { class: "sw-thumb", width: t, height: t, "aria-label": `input ${inputIndex}` });
          let map: NumArray | null = null;
          let mh = 0;
          let mw = 0;
          if (mapsWire && maps) {
            [, mh, mw] = mapsWire.shape;
            map = maps.subarray(j * mh * mw, (j + 1) * mh * mw);
          }
          paintExample(canvas, imgData.subarray(j * 3 * t * t, (j + 1) * 3 * t * t), t, map, mh, mw, peak);
          canvas.dataset.map = map ? "on" : "off";
          item.append(canvas, h("div", { class: "sw-caption" }, caption));
        } else {
          item.append(h("div", { class: "sw-caption" }, caption));
          if (toks[j]) {
            const row = pos && span === toks[j].length ? pos.subarray(j * span, (j + 1) * span) : null;
            item.append(tokenStrip(toks[j], row, posPeak));
          }
          if (fields && fvals && fz && m > 0) {
            item.append(
              h(
                "div",
                { class: "sw-fields" },
                undefined,
                Array.from({ length: m }, (_, q) => {
                  const k = fields[j * m + q];
                  const z = fz[j * m + q];
                  const unit = units[k] ? ` ${units[k]}` : "";
                  return h("span", { class: `sw-field ${z < 0 ? "sw-low" : "sw-high"}`, "data-field": k, title: `z = ${z.toFixed(2)}` }, undefined, [
                    h("span", { class: "sw-field-name" }, fieldNames[k] ?? `x${k}`),
                    h("span", { class: "sw-field-value" }, ` ${Number(fvals[j * m + q].toPrecision(4))}${unit} `),
                    h("span", { class: "sw-field-z" }, `z ${signed(z, 1)}`),
                  ]);
                }),
              ),
            );
          }
        }
        return item;
      }),
    );
  }

  function renderEffect(): void {
    const classes = model.get("class_names");
    const counts = decodeArray(model.get("effect_hist"));
    const edges = decodeArray(model.get("effect_edges"));
    const mean = decodeArray(model.get("effect_mean"));
    const flips = model.get("effect_flips");
    const n = model.get("n_inputs");
    const cls = model.get("effect_class");
    const m = model.get("effect_mode");
    const what = m === "steer" ? `steered by ${signed(model.get("steer"), 2)}` : "ablated";
    effectTitle.textContent = `effect on the cohort when ${what}`;
    const pending = model.get("effect_pending");
    effectText.textContent = pending ? "computing the effect on the cohort…" : `${flips} of ${n} predictions flip · Δ ${classes[cls] ?? cls}`;
    effectText.dataset.flips = String(flips);
    effectText.dataset.pending = pending ? "true" : "false";
    effectHist.replaceChildren();
    if (counts && edges) effectHist.append(histogram(counts, edges, `change of ${classes[cls] ?? cls}`, true));
    effectMean.replaceChildren(
      ...classes.map((c, i) =>
        h("div", { class: "sw-mean-row", role: "listitem", "data-class": i, "data-mean": mean?.[i] ?? 0 }, undefined, [
          h("span", { class: "sw-mean-name", title: c }, c),
          h("span", { class: "sw-mean-value" }, `mean Δ ${signed(mean?.[i] ?? 0)}`),
        ]),
      ),
    );
  }

  function renderGroundTruth(): void {
    const names = model.get("factor_names");
    const r = decodeArray(model.get("gt_corr"));
    gtPanel.hidden = names.length === 0 || !r;
    if (!r || names.length === 0) return;
    gtTitle.textContent = `${model.get("feature_names")[model.get("selected")] ?? ""} vs true factors`;
    gt.replaceChildren(...factorRows(names, r));
  }

  function showControls(): void {
    ablateRadio.checked = mode !== "steer";
    steerRadio.checked = mode === "steer";
    const max = model.get("steer_max");
    steerSlider.min = String(-max);
    steerSlider.max = String(max);
    steerSlider.step = String(max / 50);
    if (document.activeElement !== steerSlider || !co.busy) steerSlider.value = String(steer);
    steerSlider.disabled = mode !== "steer";
    steerValue.textContent = signed(steer, 2);
    effectClassSel.value = String(effectClass);
    openLab.title = model.get("lab_linked") ? "select this latent in the linked FeatureLab" : "build a FeatureLab with the SAE basis and select this latent";
  }

  function syncFromModel(): void {
    selected = model.get("selected");
    mode = model.get("effect_mode");
    steer = model.get("steer");
    effectClass = model.get("effect_class");
    const at = shown.indexOf(selected);
    if (at >= 0) cursor = at;
    showSelection();
    showControls();
  }

  function showProgress(): void {
    const done = model.get("progress_done");
    const total = model.get("progress_total");
    const running = total > 0 && done < total;
    progressRow.hidden = !running;
    progress.max = Math.max(1, total);
    progress.value = Math.min(done, total);
    const what = model.get("progress_what") || "computing";
    progressText.textContent = running ? `${what}: ${done} of ${total}` : "";
    root.dataset.progress = running ? `${done}/${total}` : "";
  }

  function renderAll(): void {
    title.textContent = `FeatureDashboard · site ${model.get("site")} · ${model.get("feature_names").length} latents`;
    const err = model.get("error");
    error.textContent = err;
    error.hidden = !err;
    const note = model.get("notice");
    notice.textContent = note;
    notice.hidden = !note;
    root.dataset.kind = model.get("input_kind");
    renderDetail();
    root.dataset.rev = String(model.get("rev"));
  }

  // ---- wiring
  // one call per applied update, with every key of it in place (lib/protocol.ts)
  function update(changed: ReadonlySet<keyof DashboardState>): void {
    const progressKeys: ReadonlyArray<keyof DashboardState> = ["progress_done", "progress_total", "progress_what"];
    if (progressKeys.some((k) => changed.has(k))) showProgress();
    if ([...changed].every((k) => progressKeys.includes(k))) return; // sent mid-computation, ahead of its result
    if (changed.has("feature_names") || changed.has("effect") || changed.has("effect_candidates") || changed.has("sort_input")) buildSortOptions();
    if (["feature_names", "effect", "order", "frequency", "sort_class"].some((k) => changed.has(k as keyof DashboardState))) buildList();
    if (changed.has("steer_max") || changed.has("lab_linked")) showControls();
    const state = conn.answer(co);
    if (state === "stale") return; // an answer to an older request of ours
    if (state === "idle") {
      syncFromModel();
      root.classList.remove("sw-busy");
    }
    renderAll();
  }

  d.listen(list, "scroll", () => renderRows());
  d.listen(search, "input", () => {
    buildList();
    list.scrollTop = 0;
    renderRows();
  });
  d.listen(search, "keydown", (ev) => {
    if (ev.key !== "Enter") return;
    ev.preventDefault();
    const f = shown[0];
    if (f !== undefined) choose(f); // Enter takes the first match
  });
  d.listen(list, "click", (ev) => {
    const row = (ev.target as HTMLElement).closest("[data-feature]") as HTMLElement | null;
    if (!row) return;
    list.focus();
    choose(Number(row.dataset.feature));
  });
  d.listen(list, "keydown", (ev) => {
    if (ev.key === "Enter" || ev.key === " ") {
      ev.preventDefault();
      const f = shown[cursor];
      if (f !== undefined) choose(f);
      return;
    }
    const next = moveCursor(cursor, ev.key, shown.length);
    if (next === null) return;
    ev.preventDefault();
    moveTo(next);
  });
  // Enter commits at once (JupyterLab may keep a number input from firing change on Enter); blur commits too
  let committed: string | null = null;
  const commitGoto = (): void => {
    if (goto.value.trim() === "" || goto.value === committed) return;
    committed = goto.value;
    const f = Number(goto.value);
    if (Number.isFinite(f)) choose(f);
  };
  d.listen(goto, "input", () => {
    committed = null;
  });
  d.listen(goto, "keydown", (ev) => {
    if (ev.key !== "Enter") return;
    ev.preventDefault();
    committed = null;
    commitGoto();
  });
  d.listen(goto, "change", commitGoto);
  d.listen(sort, "change", () => {
    const [by, cls] = sort.value.split(":");
    conn.send({ type: "sort", seq: 0, origin: "", by, class: cls === undefined ? model.get("sort_class") : Number(cls) });
  });
  const onMode = (): void => {
    mode = steerRadio.checked ? "steer" : "ablate";
    showControls();
    request();
  };
  d.listen(ablateRadio, "change", onMode);
  d.listen(steerRadio, "change", onMode);
  d.listen(steerSlider, "input", () => {
    steer = Number(steerSlider.value);
    steerValue.textContent = signed(steer, 2);
    request();
  });
  d.listen(effectClassSel, "change", () => {
    effectClass = Number(effectClassSel.value);
    request();
  });
  d.listen(openLab, "click", () => conn.send({ type: "open_lab", seq: 0, origin: "", feature: selected }));

  buildSortOptions();
  buildList();
  syncFromModel();
  showProgress();
  renderAll();
  // a large dashboard leaves the first latent's cohort effect to the view: ask for it now
  if (model.get("effect_pending")) request();
  return () => d.dispose();
}

export default { render };

export type { AnyModel };
