/**
 * FeatureLab view: class probabilities (baseline vs edited, with deltas) and the
 * site's features, each with an on/off switch and a steering slider.
 */
import type { AnyModel, RenderProps } from "@anywidget/types";
import { scaleLinear } from "d3-scale";
import { decodeArray, type WireArray } from "./lib/codec";
import { Coalescer } from "./lib/coalesce";
import { control, Disposer, factorRows, h, signed, tokenStrip } from "./lib/dom";
import { connect, type KeyTable } from "./lib/protocol";
import { filterLatents, OVERSCAN, visibleRange } from "./lib/virtual";
import { s, svgRoot } from "./lib/svg";
import "./lib/theme.css";
import "./lab.css";

export interface LabState {
  site: string;
  feature_names: string[];
  class_names: string[];
  n_inputs: number;
  index: number;
  input_label: string;
  ablated: number[];
  steer: WireArray | null;
  steer_max: number;
  baseline: WireArray | null;
  edited: WireArray | null;
  activations: WireArray | null;
  readout: string;
  image: WireArray | null;
  channel_names: string[];
  selected: number;
  spatial: WireArray | null;
  positions: WireArray | null;
  input_tokens: string[];
  generated_baseline: string;
  generated_edited: string;
  text_input: boolean;
  text_edited: string;
  gallery: WireArray | null;
  gallery_indices: WireArray | null;
  factor_names: string[];
  record_names: string[];
  record_units: string[];
  record_levels: Record<string, string[]>;
  record: WireArray | null;
  record_edited: boolean;
  gt_corr: WireArray | null;
  cohort_class: number;
  cohort_hist: WireArray | null;
  cohort_edges: WireArray | null;
  cohort_flips: number;
  cohort_top: WireArray | null;
  cohort_top_delta: WireArray | null;
  /**
   * Rows the cohort summary covers for the current controls (`cohort_total` once complete; 0: the
   * summary still belongs to the previous controls). Optional: states saved before the cohort became
   * progressive (HTML snapshots) have neither key and read as complete.
   */
  cohort_done?: number;
  /** Rows in the cohort (0: no cohort view). */
  cohort_total?: number;
  /** List order: "index", "activation" (on the shown input) or "attribution" (to the shown prediction). */
  order_by?: string;
  /** Feature indices in attribution order, computed by Python for `order_by === "attribution"`. */
  feature_order?: WireArray | null;
  /** The class the attribution order was computed for (-1: none). */
  order_target?: number;
  error: string;
  rev: number;
  seq: number;
  origin: string;
}

/** Every synced key the view reads (the compiler checks it against LabState). */
const KEYS: KeyTable<LabState> = {
  site: true, feature_names: true, class_names: true, n_inputs: true, index: true, input_label: true, ablated: true,
  steer: true, steer_max: true, baseline: true, edited: true, activations: true, readout: true, image: true,
  channel_names: true, selected: true, spatial: true, positions: true, input_tokens: true, generated_baseline: true,
  generated_edited: true, text_input: true, text_edited: true, gallery: true, gallery_indices: true, factor_names: true,
  record_names: true, record_units: true, record_levels: true, record: true, record_edited: true, gt_corr: true,
  cohort_class: true, cohort_hist: true, cohort_edges: true, cohort_flips: true, cohort_top: true,
  cohort_top_delta: true, cohort_done: true, cohort_total: true, order_by: true, feature_order: true, order_target: true, error: true, rev: true, seq: true, origin: true,
};

/** Lists longer than this render only the rows in view. */
export const VIRTUAL_AT = 200;
/** Row height of a virtual feature list, in pixels. */
export const LAB_ROW_HEIGHT = 24;
/** Height a virtual list is drawn at before the page lays it out (CSS `max-height` of `.sw-features`). */
const LIST_HEIGHT = 420;

/** Keys that only the cohort summary's own messages change (each partial summary is one such message). */
const COHORT_KEYS = new Set<string>([
  "cohort_hist", "cohort_edges", "cohort_flips", "cohort_top", "cohort_top_delta", "cohort_done", "cohort_total",
]);

interface Controls {
  index: number;
  ablated: number[];
  steer: Float32Array;
}

/** Render a FeatureLab into `el`; returns the cleanup that removes every listener. */
function render({ model, el }: Pick<RenderProps<LabState>, "model" | "el">): () => void {
  const d = new Disposer();
  const conn = connect(model, el, d, KEYS, (changed) => update(changed));
  const { viewId } = conn;

  // ---- local control state (authoritative while the user is interacting)
  let index = model.get("index");
  let ablated = new Set<number>(model.get("ablated"));
  let steer = Float32Array.from(decodeArray(model.get("steer")) ?? []);

  const co = new Coalescer<Controls>((c, seq) => {
    conn.send({ type: "request", seq, origin: viewId, index: c.index, ablated: c.ablated }, [c.steer.buffer as ArrayBuffer]);
  });
  const request = (): void => {
    if (conn.offline()) return; // a page without a kernel: the saved state stays, with the reason
    root.classList.add("sw-busy");
    co.push({ index, ablated: [...ablated].sort((a, b) => a - b), steer: steer.slice() });
  };

  // ---- skeleton
  const root = h("div", { class: "sw-lab sw-widget", "data-view": viewId });
  const title = h("div", { class: "sw-title" });
  const prev = control(h("button", { class: "sw-prev", type: "button", "aria-label": "previous input" }, "◀"));
  const next = control(h("button", { class: "sw-next", type: "button", "aria-label": "next input" }, "▶"));
  const indexInput = control(
    h("input", { class: "sw-index", type: "number", min: 0, step: 1, "aria-label": "input index" }),
  );
  const label = h("span", { class: "sw-input-label" });
  const header = h("div", { class: "sw-header" }, undefined, [title, h("div", { class: "sw-picker" }, undefined, [prev, indexInput, next, label])]);
  const error = h("div", { class: "sw-error", role: "alert" });
  const preds = h("div", { class: "sw-preds", "aria-label": "predictions" });
  const legend = h("div", { class: "sw-legend" }, undefined, [
    h("span", { class: "sw-swatch sw-base" }),
    h("span", {}, "baseline"),
    h("span", { class: "sw-swatch sw-edit" }),
    h("span", {}, "edited"),
  ]);
  const features = h("div", { class: "sw-features", role: "list", "aria-label": "features" });
  const cohortTitle = h("h4", {}, "cohort");
  const cohortHist = h("div", { class: "sw-hist" });
  const cohortText = h("div", { class: "sw-cohort-text" });
  // the cohort follows the shown input in chunks: "updating k/n" until its summary is complete
  const cohortProgress = h("div", { class: "sw-cohort-progress", role: "status", "aria-live": "polite" });
  const cohortTop = h("div", { class: "sw-top", role: "list", "aria-label": "most affected inputs" });
  const cohort = h("div", { class: "sw-cohort" }, undefined, [cohortTitle, cohortProgress, cohortText, cohortHist, cohortTop]);
  // image inputs: the shown image (composite or one channel) with the selected feature's map on top
  const canvas = h("canvas", { class: "sw-image", width: 128, height: 128, "aria-label": "input image" });
  const channel = control(h("select", { class: "sw-channel", "aria-label": "image channel" }));
  const overlay = control(h("input", { type: "checkbox", class: "sw-overlay", checked: true, "aria-label": "show activation map" }));
  const gallery = h("div", { class: "sw-gallery", role: "list", "aria-label": "gallery" });
  const imagePanel = h("section", { class: "sw-image-panel" }, undefined, [
    h("h4", {}, "input"),
    canvas,
    h("div", { class: "sw-image-controls" }, undefined, [channel, h("label", {}, undefined, [overlay, h("span", {}, "map")])]),
    gallery,
  ]);
  // token inputs: the shown input's tokens, highlighted by the selected feature's activation per position
  const tokensTitle = h("div", { class: "sw-tokens-title" });
  const tokens = h("div", { class: "sw-tokens", role: "list", "aria-label": "input tokens" });
  // with encode= in Python: type your own text in place of the shown input
  const textBox = control(h("textarea", { class: "sw-text", rows: 2, "aria-label": "type text to use as the input" }));
  const textRun = control(h("button", { type: "button", class: "sw-text-run" }, "use this text"));
  const textReset = control(h("button", { type: "button", class: "sw-text-reset" }, "back to the data"));
  const textForm = h("div", { class: "sw-text-form" }, undefined, [textBox, h("div", {}, undefined, [textRun, textReset])]);
  const tokenPanel = h("section", { class: "sw-token-panel" }, undefined, [h("h4", {}, "input"), tokensTitle, tokens, textForm]);
  // language models: what the model writes next, as trained and edited (the edited line marks where it departs)
  const genBase = h("div", { class: "sw-gen-text sw-gen-base" });
  const genEdit = h("div", { class: "sw-gen-text sw-gen-edit" });
  const generate = h("div", { class: "sw-generate" }, undefined, [
    h("div", { class: "sw-gen-label" }, "as trained"),
    genBase,
    h("div", { class: "sw-gen-label" }, "edited"),
    genEdit,
  ]);
  const recordFields = h("div", { class: "sw-record-fields" });
  const recordReset = control(h("button", { type: "button", class: "sw-record-reset" }, "restore record"));
  const recordSummary = h("summary", {}, "record (original units, editable)");
  control(recordSummary);
  const recordPanel = h("details", { class: "sw-record" }, undefined, [recordSummary, recordFields, recordReset]);
  const gtTitle = h("h4", {}, "ground truth");
  const gt = h("div", { class: "sw-gt", role: "list", "aria-label": "correlation with true factors" });
  const gtPanel = h("div", { class: "sw-gt-panel" }, undefined, [gtTitle, gt]);
  const reset = control(h("button", { class: "sw-reset", type: "button" }, "reset edits"));
  // list order: by index, or the features most active on the shown input first (an SAE has hundreds)
  const order = control(
    h("select", { class: "sw-order", "aria-label": "order features" }, undefined, [
      h("option", { value: "index" }, "by index"),
      h("option", { value: "activation" }, "most active here first"),
      h("option", { value: "attribution" }, "attribution to the prediction"),
    ]),
  );
  // find a feature among thousands: "#123" (that index), "123" (index, then names), or part of a name
  const search = control(
    h("input", { class: "sw-search", type: "search", placeholder: "find: index or name", "aria-label": "find features by index or name" }),
  );
  const listInfo = h("div", { class: "sw-list-info", "aria-live": "polite" });
  const status = h("span", { class: "sw-status", "aria-live": "polite" });
  root.append(
    header,
    error,
    h("div", { class: "sw-body" }, undefined, [
      imagePanel,
      tokenPanel,
      h("section", { class: "sw-pred-panel" }, undefined, [h("h4", {}, "prediction"), legend, preds, generate, recordPanel, cohort]),
      h("section", { class: "sw-feature-panel" }, undefined, [
        h("div", { class: "sw-feature-head" }, undefined, [h("h4", {}, "features"), search, order]),
        listInfo,
        features,
        gtPanel,
      ]),
    ]),
    h("div", { class: "sw-footer" }, undefined, [reset, status]),
  );
  el.appendChild(root);
  d.add(() => root.remove());

  // ---- features list
  // Small lists render a row per feature. Past VIRTUAL_AT features (an SAE has tens of thousands) the list
  // renders only the rows in view: `rowOf` holds the live rows, created on demand, positioned in a spacer.
  type Row = { toggle: HTMLInputElement; slider: HTMLInputElement; value: HTMLElement; bar: HTMLElement; row: HTMLElement };
  const rowOf = new Map<number, Row>();
  const spacer = h("div", { class: "sw-fspacer", style: "position:relative" });
  let virtual = false;
  let view: number[] = []; // the features in list order that match the search
  let acts: ArrayLike<number> | null = null; // clean coordinates of the shown input
  let amax = 1e-9;
  let disposed = false; // row listeners are the rows' own (not the disposer's): they check this
  d.add(() => {
    disposed = true;
  });

  function makeRow(i: number): Row {
    const names = model.get("feature_names");
    const name = names[i] ?? String(i);
    const max = model.get("steer_max");
    const toggle = control(h("input", { type: "checkbox", class: "sw-toggle", "aria-label": `${name} on` }));
    const slider = control(
      h("input", { type: "range", class: "sw-slider", min: -max, max, step: max / 50, value: 0, "aria-label": `steer ${name}` }),
    );
    const value = h("span", { class: "sw-steer-value" });
    const bar = h("span", { class: "sw-act-bar" });
    const row = h("div", { class: "sw-feature", role: "listitem", "data-feature": i }, undefined, [
      toggle,
      control(h("button", { type: "button", class: "sw-feature-name", title: `select ${name}`, "data-select": i }, name)),
      h("span", { class: "sw-act" }, undefined, [bar]),
      slider,
      value,
    ]);
    // the listeners go with the row (a virtual row that scrolls out of view is dropped whole)
    toggle.addEventListener("change", () => {
      if (disposed) return;
      if (toggle.checked) ablated.delete(i);
      else ablated.add(i);
      row.classList.toggle("sw-off", !toggle.checked);
      request();
    });
    slider.addEventListener("input", () => {
      if (disposed) return;
      steer[i] = Number(slider.value);
      value.textContent = signed(steer[i], 2);
      request();
    });
    slider.addEventListener("dblclick", () => {
      if (disposed) return;
      steer[i] = 0;
      slider.value = "0";
      value.textContent = signed(0, 2);
      request();
    });
    const r = { toggle, slider, value, bar, row };
    showRow(r, i);
    showAct(r, i);
    row.classList.toggle("sw-selected", i === model.get("selected"));
    return r;
  }

  function showRow(r: Row, i: number): void {
    r.toggle.checked = !ablated.has(i);
    r.row.classList.toggle("sw-off", ablated.has(i));
    if (document.activeElement !== r.slider || !co.busy) r.slider.value = String(steer[i] ?? 0);
    r.value.textContent = signed(steer[i] ?? 0, 2);
  }

  function showAct(r: Row, i: number): void {
    if (!acts) return;
    const a = acts[i] ?? 0;
    r.bar.style.width = `${((Math.abs(a) / amax) * 100).toFixed(1)}%`;
    r.bar.classList.toggle("sw-neg", a < 0);
    r.bar.parentElement?.setAttribute("title", `activation ${a.toFixed(3)}`);
  }

  function buildFeatures(): void {
    rowOf.clear();
    const n = model.get("feature_names").length;
    virtual = n > VIRTUAL_AT;
    features.classList.toggle("sw-virtual", virtual);
    spacer.replaceChildren();
    features.replaceChildren(...(virtual ? [spacer] : []));
    if (steer.length !== n) steer = new Float32Array(n);
    orderedFor = "";
    orderFeatures();
  }

  /** The list order (before the search): by index, by |activation| on the shown input, or Python's attribution order. */
  function listOrder(): number[] {
    const n = model.get("feature_names").length;
    const idx = Array.from({ length: n }, (_, i) => i);
    if (order.value === "activation" && acts) {
      const a = acts;
      idx.sort((x, y) => Math.abs(a[y] ?? 0) - Math.abs(a[x] ?? 0) || x - y);
    } else if (order.value === "attribution") {
      const fo = decodeArray(model.get("feature_order") ?? null);
      if (fo && fo.length === n && model.get("order_by") === "attribution") return Array.from(fo);
    }
    return idx;
  }

  let orderedFor = "";
  /** Re-order and re-filter the list when the order, the shown input, the attribution or the search changes;
   * edits never move rows. */
  function orderFeatures(force = false): void {
    const fo = model.get("feature_order") ?? null;
    // by index the order never depends on the shown input: a new input keeps the list where it was scrolled
    const perInput = order.value === "index" ? "" : String(model.get("index"));
    const key = `${order.value}|${perInput}|${model.get("feature_names").length}|${search.value}|${model.get("order_by")}|${fo ? (decodeArray(fo)?.[0] ?? "") : ""}`;
    if (!force && key === orderedFor) return;
    orderedFor = key;
    const names = model.get("feature_names");
    view = filterLatents(listOrder(), names, search.value);
    const n = names.length;
    const target = model.get("order_target") ?? -1;
    const by =
      order.value === "attribution" && model.get("order_by") === "attribution" && target >= 0
        ? `, ordered by attribution to ${model.get("class_names")[target] ?? target}`
        : "";
    listInfo.textContent =
      order.value === "attribution" && model.get("order_by") !== "attribution"
        ? "computing attribution…"
        : search.value.trim() !== ""
          ? `${view.length} of ${n} features match${by}`
          : virtual || by
            ? `${n} features${by}`
            : "";
    if (virtual) {
      spacer.style.height = `${view.length * LAB_ROW_HEIGHT}px`;
      features.scrollTop = 0;
      for (const r of rowOf.values()) r.row.remove();
      rowOf.clear();
      renderRows();
      return;
    }
    for (let i = 0; i < n; i++) if (!rowOf.has(i)) rowOf.set(i, makeRow(i));
    const shown = new Set(view);
    rowOf.forEach((r, i) => (r.row.hidden = !shown.has(i)));
    features.append(...view.map((i) => (rowOf.get(i) as Row).row), ...[...rowOf.keys()].filter((i) => !shown.has(i)).map((i) => (rowOf.get(i) as Row).row));
  }

  /** Virtual list: render the rows in view (plus overscan), reusing the ones already there. */
  function renderRows(): void {
    if (!virtual) return;
    const viewport = features.clientHeight || LIST_HEIGHT;
    const [start, end] = visibleRange(features.scrollTop, viewport, view.length, LAB_ROW_HEIGHT, OVERSCAN);
    const want = new Set(view.slice(start, end));
    for (const [i, r] of rowOf) {
      if (!want.has(i)) {
        r.row.remove();
        rowOf.delete(i);
      }
    }
    for (let pos = start; pos < end; pos++) {
      const i = view[pos];
      let r = rowOf.get(i);
      if (!r) {
        r = makeRow(i);
        rowOf.set(i, r);
        spacer.appendChild(r.row);
      }
      r.row.dataset.pos = String(pos);
      r.row.style.cssText = `position:absolute;left:0;right:0;top:${pos * LAB_ROW_HEIGHT}px;height:${LAB_ROW_HEIGHT}px;box-sizing:border-box`;
    }
  }

  function showControls(): void {
    indexInput.value = String(index);
    indexInput.max = String(Math.max(0, model.get("n_inputs") - 1));
    prev.disabled = index <= 0;
    next.disabled = index >= model.get("n_inputs") - 1;
    rowOf.forEach((r, i) => showRow(r, i));
  }

  function syncFromModel(): void {
    index = model.get("index");
    ablated = new Set<number>(model.get("ablated"));
    steer = Float32Array.from(decodeArray(model.get("steer")) ?? new Float32Array(model.get("feature_names").length));
    showControls();
  }

  // ---- results
  function renderGenerated(): void {
    const b = model.get("generated_baseline") ?? "";
    const e = model.get("generated_edited") ?? "";
    generate.hidden = b === "" && e === "";
    let k = 0;
    while (k < b.length && k < e.length && b[k] === e[k]) k++;
    genBase.textContent = b;
    genEdit.replaceChildren(h("span", {}, e.slice(0, k)), h("span", { class: "sw-diverged" }, e.slice(k)));
    generate.dataset.diverge = b === e ? "" : String(k);
  }

  function renderResults(): void {
    const names = model.get("class_names");
    const base = decodeArray(model.get("baseline")) ?? new Float32Array(names.length);
    const edit = decodeArray(model.get("edited")) ?? new Float32Array(names.length);
    const probs = model.get("readout") !== "identity";
    const hi = probs ? 1 : Math.max(1e-9, ...Array.from(base, Math.abs), ...Array.from(edit, Math.abs));
    const x = scaleLinear().domain([0, hi]).range([0, 100]).clamp(true);
    preds.replaceChildren(
      ...names.map((name, i) => {
        const b = base[i] ?? 0;
        const e = edit[i] ?? 0;
        const delta = e - b;
        const row = h("div", {
          class: "sw-pred",
          "data-class": i,
          "data-baseline": b,
          "data-edited": e,
        });
        const bars = h("div", { class: "sw-bars" }, undefined, [
          h("div", { class: "sw-bar sw-base", style: `width:${x(Math.abs(b)).toFixed(2)}%` }),
          h("div", { class: "sw-bar sw-edit", style: `width:${x(Math.abs(e)).toFixed(2)}%` }),
        ]);
        row.append(
          h("span", { class: "sw-class-name", title: name }, name),
          bars,
          h("span", { class: "sw-values" }, `${b.toFixed(3)} → ${e.toFixed(3)}`),
          h(
            "span",
            { class: `sw-delta ${delta > 1e-6 ? "sw-up" : delta < -1e-6 ? "sw-down" : ""}` },
            `Δ ${signed(delta)}`,
          ),
        );
        return row;
      }),
    );
    acts = decodeArray(model.get("activations"));
    if (acts) {
      amax = 1e-9;
      for (let i = 0; i < acts.length; i++) amax = Math.max(amax, Math.abs(acts[i]));
      rowOf.forEach((r, i) => showAct(r, i));
    }
    orderFeatures();
    renderGenerated();
    renderCohort();
    renderImage();
    renderTokens();
    renderRecord();
    renderGroundTruth();
    label.textContent = model.get("input_label");
    title.textContent = `FeatureLab · site ${model.get("site")}`;
    const err = model.get("error");
    error.textContent = err;
    error.hidden = !err;
    root.dataset.rev = String(model.get("rev"));
  }

  /**
   * The cohort panel. Python sends the summary progressively: with each update of the shown input
   * `cohort_done` drops to 0 (the panel keeps the previous summary, dimmed: it belongs to the previous
   * controls), then each chunk's running summary arrives (exact for the rows it covers: shown as is,
   * with "updating k/n"), until `cohort_done` reaches `cohort_total`.
   */
  function renderCohort(): void {
    const hist = decodeArray(model.get("cohort_hist"));
    const edges = decodeArray(model.get("cohort_edges"));
    const top = decodeArray(model.get("cohort_top"));
    const topDelta = decodeArray(model.get("cohort_top_delta"));
    const has = !!hist && !!edges && hist.length > 0;
    const rows = has ? Array.from(hist).reduce((a, b) => a + b, 0) : 0;
    const total = model.get("cohort_total") ?? rows;
    const done = model.get("cohort_done") ?? total;
    const updating = total > 0 && done < total;
    cohort.hidden = !has && !updating;
    cohort.dataset.done = String(done);
    cohort.dataset.total = String(total);
    cohort.classList.toggle("sw-stale", updating && done === 0);
    cohort.classList.toggle("sw-partial", updating && done > 0);
    cohortProgress.hidden = !updating;
    cohortProgress.textContent = updating ? `updating ${done}/${total}` : "";
    if (!hist || !edges || !has) {
      cohortTitle.textContent = "cohort";
      cohortText.textContent = "";
      cohortHist.replaceChildren();
      cohortTop.replaceChildren();
      return;
    }
    const names = model.get("class_names");
    const cls = names[model.get("cohort_class")] ?? String(model.get("cohort_class"));
    const flips = model.get("cohort_flips");
    cohort.dataset.flips = String(flips);
    const partial = updating && done > 0;
    cohortTitle.textContent = partial
      ? `cohort: change of ${cls} over the first ${rows} of ${total} inputs`
      : `cohort: change of ${cls} over ${rows} inputs`;
    cohortText.textContent = `${flips} of ${rows} predictions flip${partial ? " so far" : ""}`;
    const W = 240;
    const H = 60;
    const svg = svgRoot(W, H + 12, `histogram of the change of ${cls}`);
    const y = scaleLinear().domain([0, Math.log1p(Math.max(1, ...Array.from(hist)))]).range([0, H]);
    const bw = W / hist.length;
    hist.forEach((c, i) => {
      const hgt = y(Math.log1p(c));
      const mid = (edges[i] + edges[i + 1]) / 2;
      svg.append(
        s("rect", {
          x: i * bw + 0.5,
          y: H - hgt,
          width: Math.max(1, bw - 1),
          height: hgt,
          class: mid < 0 ? "sw-hist-neg" : mid > 0 ? "sw-hist-pos" : "sw-hist-zero",
          "data-count": c,
        }),
      );
    });
    svg.append(s("text", { x: 0, y: H + 11, class: "sw-axis" }, edges[0].toFixed(2)));
    svg.append(s("text", { x: W, y: H + 11, class: "sw-axis", "text-anchor": "end" }, `+${edges[edges.length - 1].toFixed(2)}`));
    cohortHist.replaceChildren(svg);
    cohortTop.replaceChildren(
      ...Array.from(top ?? [], (idx, j) =>
        control(
          h(
            "button",
            { type: "button", class: "sw-top-item", role: "listitem", "data-index": idx, title: `show input ${idx}` },
            `#${idx} Δ ${signed(topDelta?.[j] ?? 0)}`,
          ),
        ),
      ),
    );
  }

  const RGB = [
    [0.2, 1.0, 0.2],
    [0.25, 0.45, 1.0],
    [1.0, 0.25, 0.85],
    [1.0, 0.85, 0.1],
  ];

  function paint(ctx: CanvasRenderingContext2D, data: ArrayLike<number>, c: number, hgt: number, wid: number, pick: number): void {
    const img = ctx.createImageData(wid, hgt);
    for (let y = 0; y < hgt; y++)
      for (let x = 0; x < wid; x++) {
        let r = 0;
        let g = 0;
        let b = 0;
        for (let k = 0; k < c; k++) {
          if (pick >= 0 && k !== pick) continue;
          const v = data[(k * hgt + y) * wid + x];
          const col = pick >= 0 || c === 1 ? [1, 1, 1] : RGB[k % RGB.length];
          r += v * col[0];
          g += v * col[1];
          b += v * col[2];
        }
        const o = (y * wid + x) * 4;
        img.data[o] = Math.min(255, r * 255);
        img.data[o + 1] = Math.min(255, g * 255);
        img.data[o + 2] = Math.min(255, b * 255);
        img.data[o + 3] = 255;
      }
    ctx.putImageData(img, 0, 0);
  }

  function renderImage(): void {
    const wire = model.get("image");
    imagePanel.hidden = !wire;
    if (!wire) return;
    const data = decodeArray(wire);
    const [c, hgt, wid] = wire.shape;
    const names = model.get("channel_names");
    if (channel.options.length !== names.length + 1) {
      channel.replaceChildren(h("option", { value: -1 }, "composite"), ...names.map((n, i) => h("option", { value: i }, n)));
    }
    canvas.width = wid;
    canvas.height = hgt;
    const ctx = canvas.getContext("2d");
    if (!ctx || !data) return;
    paint(ctx, data, c, hgt, wid, Number(channel.value));
    const sp = model.get("spatial");
    const map = decodeArray(sp);
    canvas.dataset.map = map ? "on" : "off";
    if (sp && map && overlay.checked) {
      const [mh, mw] = sp.shape;
      const peak = Math.max(1e-9, ...Array.from(map, Math.abs));
      const tmp = document.createElement("canvas");
      tmp.width = mw;
      tmp.height = mh;
      const tctx = tmp.getContext("2d");
      if (tctx) {
        const im = tctx.createImageData(mw, mh);
        map.forEach((v, i) => {
          const a = Math.min(1, Math.abs(v) / peak);
          im.data[i * 4] = v >= 0 ? 255 : 30;
          im.data[i * 4 + 1] = v >= 0 ? 140 : 120;
          im.data[i * 4 + 2] = v >= 0 ? 0 : 255;
          im.data[i * 4 + 3] = Math.round(a * 170);
        });
        tctx.putImageData(im, 0, 0);
        ctx.imageSmoothingEnabled = true;
        ctx.drawImage(tmp, 0, 0, wid, hgt);
      }
    }
    const thumbs = model.get("gallery");
    const idx = decodeArray(model.get("gallery_indices"));
    const tdata = decodeArray(thumbs);
    if (thumbs && tdata && idx && gallery.childElementCount !== idx.length) {
      const [, , th, tw] = thumbs.shape;
      gallery.replaceChildren(
        ...Array.from(idx, (inputIndex, g) => {
          const tc = h("canvas", { width: tw, height: th });
          const tctx = tc.getContext("2d");
          if (tctx) paint(tctx, tdata.subarray(g * 3 * th * tw, (g + 1) * 3 * th * tw), 3, th, tw, -1);
          return control(h("button", { type: "button", class: "sw-thumb", "data-index": inputIndex, title: `input ${inputIndex}` }, undefined, [tc]));
        }),
      );
    }
    for (const b of gallery.querySelectorAll<HTMLElement>(".sw-thumb")) b.classList.toggle("sw-current", Number(b.dataset.index) === index);
  }

  function renderRecord(): void {
    const names = model.get("record_names");
    const units = model.get("record_units") ?? [];
    const levels = model.get("record_levels") ?? {};
    const values = decodeArray(model.get("record"));
    recordPanel.hidden = names.length === 0 || !values;
    if (names.length === 0 || !values) return;
    if (recordFields.childElementCount !== names.length) {
      recordFields.replaceChildren(
        ...names.map((n, i) =>
          h("label", { class: "sw-record-field" }, undefined, [
            h("span", { title: units[i] ? `${n} (${units[i]})` : n }, units[i] ? `${n} (${units[i]})` : n),
            levels[n]
              ? control(
                  h("select", { "data-field": i, "aria-label": n }, undefined,
                    levels[n].map((l, j) => h("option", { value: j }, l))),
                )
              : control(h("input", { type: "number", step: "any", "data-field": i, "aria-label": n })),
          ]),
        ),
      );
    }
    recordFields.querySelectorAll<HTMLInputElement | HTMLSelectElement>("input, select").forEach((inp) => {
      const v = values[Number(inp.dataset.field)];
      if (document.activeElement !== inp) inp.value = inp.tagName === "SELECT" ? String(Math.round(v)) : String(Number(v.toPrecision(6)));
    });
    recordPanel.classList.toggle("sw-edited", model.get("record_edited"));
  }

  function renderTokens(): void {
    const toks = model.get("input_tokens") ?? [];
    const typing = Boolean(model.get("text_input"));
    tokenPanel.hidden = toks.length === 0 && !typing;
    textForm.hidden = !typing;
    textReset.disabled = !model.get("text_edited");
    if (document.activeElement !== textBox) textBox.value = model.get("text_edited") || textBox.value;
    if (toks.length === 0) return;
    const acts = decodeArray(model.get("positions"));
    const sel = model.get("selected");
    const fname = model.get("feature_names")[sel];
    const shown = acts !== null && acts.length === toks.length && sel >= 0;
    tokensTitle.textContent = shown
      ? `${fname} at each token (edited)`
      : acts !== null && sel >= 0
        ? `${fname}: the site has ${acts.length} positions for ${toks.length} tokens`
        : "click a feature's name to see it at each token";
    const amax = shown ? Math.max(1e-9, ...Array.from(acts, Math.abs)) : 1;
    tokens.replaceChildren(...tokenStrip(toks, shown ? acts : null, amax).childNodes);
  }

  function renderGroundTruth(): void {
    const names = model.get("factor_names");
    const r = decodeArray(model.get("gt_corr"));
    const sel = model.get("selected");
    rowOf.forEach((row, i) => row.row.classList.toggle("sw-selected", i === sel));
    gtPanel.hidden = names.length === 0;
    if (names.length === 0) return;
    const fname = model.get("feature_names")[sel];
    gtTitle.textContent = sel >= 0 && fname ? `ground truth: ${fname} vs true factors` : "ground truth: click a feature name";
    if (!r || sel < 0) {
      gt.replaceChildren();
      return;
    }
    gt.replaceChildren(...factorRows(names, r));
  }

  // ---- wiring
  // One call per applied update, with every key of it in place (lib/protocol.ts). Only coalesced control
  // requests carry this view's id; one-off messages (select, record) are answered like changes made from
  // Python, so their responses are never mistaken for stale ones.
  function update(changed: ReadonlySet<keyof LabState>): void {
    if ([...changed].every((k) => COHORT_KEYS.has(k))) {
      renderCohort(); // a partial cohort summary: nothing else changed, the request state stays as it is
      return;
    }
    if (changed.has("feature_names")) {
      buildFeatures();
      syncFromModel();
    }
    if (changed.has("order_by")) {
      const ob = model.get("order_by") ?? "index";
      if (Array.from(order.options).some((o) => o.value === ob)) order.value = ob;
    }
    if (changed.has("steer_max")) {
      const max = model.get("steer_max");
      for (const r of rowOf.values()) {
        r.slider.min = String(-max);
        r.slider.max = String(max);
        r.slider.step = String(max / 50);
      }
    }
    const state = conn.answer(co);
    if (state === "stale") return; // an answer to an older request of ours
    if (state === "idle") {
      syncFromModel();
      root.classList.remove("sw-busy");
      status.textContent = "";
    } else {
      status.textContent = "updating…";
    }
    renderResults();
  }

  const go = (i: number): void => {
    const n = model.get("n_inputs");
    if (!Number.isFinite(i)) return;
    index = Math.min(Math.max(0, Math.round(i)), Math.max(0, n - 1));
    showControls();
    request();
  };
  d.listen(indexInput, "change", () => go(Number(indexInput.value)));
  d.listen(prev, "click", () => go(index - 1));
  d.listen(next, "click", () => go(index + 1));
  d.listen(features, "click", (ev) => {
    const b = (ev.target as HTMLElement).closest("[data-select]") as HTMLElement | null;
    if (!b) return;
    const f = Number(b.dataset.select);
    conn.send({ type: "select", seq: 0, origin: "", feature: f === model.get("selected") ? -1 : f });
  });
  d.listen(gallery, "click", (ev) => {
    const b = (ev.target as HTMLElement).closest("[data-index]") as HTMLElement | null;
    if (b) go(Number(b.dataset.index));
  });
  d.listen(channel, "change", renderImage);
  d.listen(recordFields, "change", (ev) => {
    const inp = ev.target as HTMLInputElement | HTMLSelectElement;
    if (!inp.dataset.field) return;
    const name = model.get("record_names")[Number(inp.dataset.field)];
    const v = inp.value.trim() === "" ? "" : Number(inp.value);
    conn.send({ type: "record", seq: 0, origin: "", values: { [name]: v } });
  });
  d.listen(recordReset, "click", () => conn.send({ type: "record", seq: 0, origin: "", reset: true }));
  d.listen(overlay, "change", renderImage);
  d.listen(order, "change", () => {
    // attribution needs the model's gradient: Python computes the order (feature_order) and sends it back
    if (order.value === "attribution" && model.get("order_by") !== "attribution") {
      conn.send({ type: "order", seq: 0, origin: "", by: "attribution" });
    } else if (order.value !== "attribution" && model.get("order_by") === "attribution") {
      conn.send({ type: "order", seq: 0, origin: "", by: order.value });
    }
    orderFeatures(true);
  });
  d.listen(search, "input", () => orderFeatures(true));
  let scrollFrame = 0;
  d.listen(features, "scroll", () => {
    if (!virtual || scrollFrame) return;
    scrollFrame = requestAnimationFrame(() => {
      scrollFrame = 0;
      renderRows();
    });
  });
  d.add(() => cancelAnimationFrame(scrollFrame));
  const sendText = (): void => {
    if (textBox.value !== "") conn.send({ type: "text", seq: 0, origin: "", text: textBox.value });
  };
  d.listen(textRun, "click", sendText);
  d.listen(textBox, "keydown", (ev) => {
    const k = ev as KeyboardEvent;
    if (k.key === "Enter" && (k.ctrlKey || k.metaKey)) {
      k.preventDefault();
      sendText();
    }
  });
  d.listen(textReset, "click", () => {
    textBox.value = "";
    conn.send({ type: "text", seq: 0, origin: "", reset: true });
  });
  d.listen(cohortTop, "click", (ev) => {
    const b = (ev.target as HTMLElement).closest("[data-index]") as HTMLElement | null;
    if (b) go(Number(b.dataset.index));
  });
  d.listen(reset, "click", () => {
    ablated.clear();
    steer.fill(0);
    showControls();
    request();
  });

  buildFeatures();
  syncFromModel();
  renderResults();
  return () => d.dispose();
}

export default { render };

export type { AnyModel };
