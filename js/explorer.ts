/**
 * SuperpositionExplorer view: knobs for the toy model, a training progress bar,
 * and the views (WᵀW heatmap with b, feature norms coloured by superposition,
 * feature arrows for m = 2, D_i against the geometric fractions, D* across
 * sparsity). Clicking a feature asks Python to ablate it and shows interference.
 */
import type { RenderProps } from "@anywidget/types";
import { scaleLinear, scaleLog } from "d3-scale";
import { interpolateRdBu, interpolateViridis } from "d3-scale-chromatic";
import { decodeArray, type NumArray, type WireArray } from "./lib/codec";
import { control, Disposer, h } from "./lib/dom";
import { connect, type KeyTable } from "./lib/protocol";
import { s, svgRoot } from "./lib/svg";
import "./lib/theme.css";
import "./explorer.css";

export interface ExplorerState {
  n_features: number;
  n_hidden: number;
  density: number;
  importance_decay: number;
  weight_decay: number;
  relu: boolean;
  n_instances: number;
  replicas: number;
  replica: number;
  replica_losses: WireArray | null;
  W: WireArray | null;
  b: WireArray | null;
  WtW: WireArray | null;
  norms: WireArray | null;
  superpos: WireArray | null;
  dims: WireArray | null;
  densities: WireArray | null;
  dstar: WireArray | null;
  interference: WireArray | null;
  loss: number;
  progress: number;
  training: boolean;
  ablated: number;
  error: string;
  rev: number;
  seq: number;
  origin: string;
}

/** Every synced key the view reads (the compiler checks it against ExplorerState). */
const KEYS: KeyTable<ExplorerState> = {
  n_features: true, n_hidden: true, density: true, importance_decay: true, weight_decay: true, relu: true,
  n_instances: true, replicas: true, replica: true, replica_losses: true, W: true, b: true, WtW: true, norms: true,
  superpos: true, dims: true, densities: true, dstar: true, interference: true, loss: true, progress: true,
  training: true, ablated: true, error: true, rev: true, seq: true, origin: true,
};

const FRACTIONS: Array<[number, string]> = [
  [1, "1"],
  [3 / 4, "3/4"],
  [2 / 3, "2/3"],
  [1 / 2, "1/2"],
  [2 / 5, "2/5"],
  [3 / 8, "3/8"],
];

type Knob = { key: keyof ExplorerState; input: HTMLInputElement; out: HTMLElement; read: () => number | boolean; show: (v: number | boolean) => void };

/** Render the explorer into `el`; returns the cleanup. */
function render({ model, el }: Pick<RenderProps<ExplorerState>, "model" | "el">): () => void {
  const d = new Disposer();
  // one render per applied update, with every key of it in place (lib/protocol.ts)
  const conn = connect(model, el, d, KEYS, () => renderAll());
  let seq = 0;
  let timer: ReturnType<typeof setTimeout> | null = null;
  d.add(() => {
    if (timer !== null) clearTimeout(timer);
  });

  const root = h("div", { class: "sw-explorer sw-widget" });
  const error = h("div", { class: "sw-error", role: "alert" });
  const bar = h("div", { class: "sw-progress-bar" });
  const progress = h("div", { class: "sw-progress", role: "progressbar", "aria-label": "training progress" }, undefined, [bar]);
  const status = h("span", { class: "sw-status", "aria-live": "polite" });
  const knobs = h("div", { class: "sw-knobs" });
  const views = h("div", { class: "sw-views" });
  const heat = h("canvas", { class: "sw-heat", width: 200, height: 200, "aria-label": "W transpose W heatmap" });
  const bias = h("canvas", { class: "sw-bias", width: 200, height: 12, "aria-label": "bias b" });
  const normsBox = h("div", { class: "sw-norms", role: "list", "aria-label": "feature norms" });
  const geo = h("div", { class: "sw-geo" });
  const dstarBox = h("div", { class: "sw-dstar" });
  const panel = (title: string, ...kids: Node[]): HTMLElement =>
    h("section", { class: "sw-panel" }, undefined, [h("h4", {}, title), ...kids]);
  views.append(
    panel("WᵀW and b", heat, bias),
    panel("‖W_i‖ (colour: superposition; click to ablate)", normsBox),
    panel("geometry", geo),
    panel("D* = m / ‖W‖²_F across sparsity", dstarBox),
  );
  root.append(
    h("div", { class: "sw-title" }, "SuperpositionExplorer · toy models of superposition"),
    knobs,
    h("div", { class: "sw-train" }, undefined, [progress, status]),
    error,
    views,
  );
  el.appendChild(root);
  d.add(() => root.remove());

  // ---- knobs
  // only the knobs the user changed since the last send: a rejected value in one knob must not ride
  // along with every later change of another
  const dirty = new Set<Knob>();
  const send = (): void => {
    if (conn.offline()) {
      // a page without a kernel: the knobs go back to the saved state (a focused one included)
      for (const k of dirty) k.show(model.get(k.key) as number | boolean);
      dirty.clear();
      return;
    }
    const content: Record<string, unknown> = { type: "settings", seq: ++seq, origin: "" };
    for (const k of dirty) content[k.key] = k.read();
    dirty.clear();
    conn.send(content);
  };
  const debounced = (): void => {
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(send, 120);
  };
  const num = (key: keyof ExplorerState, label: string, min: number, max: number): Knob => {
    const input = control(h("input", { type: "number", min, max, step: 1, class: `sw-knob-${String(key)}`, "aria-label": label }));
    const out = h("span");
    return { key, input, out, read: () => Number(input.value), show: (v) => (input.value = String(v)) };
  };
  const slider = (
    key: keyof ExplorerState,
    label: string,
    min: number,
    max: number,
    step: number,
    toUi: (v: number) => number,
    fromUi: (u: number) => number,
    fmt: (v: number) => string,
  ): Knob => {
    const input = control(h("input", { type: "range", min, max, step, class: `sw-knob-${String(key)}`, "aria-label": label }));
    const out = h("span", { class: "sw-knob-value" });
    return {
      key,
      input,
      out,
      read: () => fromUi(Number(input.value)),
      show: (v) => {
        input.value = String(toUi(v as number));
        out.textContent = fmt(v as number);
      },
    };
  };
  const relu = control(h("input", { type: "checkbox", class: "sw-knob-relu", "aria-label": "ReLU output" }));
  const list: Knob[] = [
    num("n_features", "features n", 2, 200),
    num("n_hidden", "hidden dimensions m", 1, 64),
    slider("density", "feature density 1 − S (log scale)", -3, 0, 0.05, Math.log10, (u) => 10 ** u, (v) => `1−S = ${v.toPrecision(2)}`),
    slider("importance_decay", "importance decay", 0.5, 1, 0.01, (v) => v, (u) => u, (v) => `I_i = ${v.toFixed(2)}^i`),
    slider("weight_decay", "weight decay (negative = growth)", -0.1, 0.1, 0.005, (v) => v, (u) => u, (v) => `wd ${v.toFixed(3)}`),
    { key: "relu", input: relu, out: h("span"), read: () => relu.checked, show: (v) => (relu.checked = Boolean(v)) },
    num("replicas", "random starts of the detailed model (the best is shown)", 1, 8),
  ];
  const labels: Record<string, string> = {
    n_features: "n",
    n_hidden: "m",
    density: "density",
    importance_decay: "importance",
    weight_decay: "weight decay",
    relu: "ReLU",
    replicas: "best of",
  };
  for (const k of list) {
    knobs.appendChild(h("label", { class: "sw-knob" }, undefined, [h("span", {}, labels[k.key as string]), k.input, k.out]));
    d.listen(k.input, k.input.type === "range" ? "input" : "change", () => {
      if (k.input.type === "range") k.show(k.read());
      dirty.add(k);
      debounced();
    });
  }
  const showKnobs = (): void => {
    for (const k of list) if (document.activeElement !== k.input) k.show(model.get(k.key) as number | boolean);
  };

  // ---- views
  const arr = (key: keyof ExplorerState): NumArray => decodeArray(model.get(key) as WireArray | null) ?? new Float32Array(0);

  function drawHeat(): void {
    const n = model.get("n_features");
    const wtw = arr("WtW");
    const b = arr("b");
    const ctx = heat.getContext("2d");
    const bctx = bias.getContext("2d");
    if (!ctx || !bctx || wtw.length !== n * n) return;
    const lim = Math.max(1e-6, ...Array.from(wtw, Math.abs), ...Array.from(b, Math.abs));
    const color = (v: number): string => interpolateRdBu(0.5 - v / (2 * lim));
    const cell = heat.width / n;
    for (let i = 0; i < n; i++)
      for (let j = 0; j < n; j++) {
        ctx.fillStyle = color(wtw[i * n + j]);
        ctx.fillRect(j * cell, i * cell, Math.ceil(cell), Math.ceil(cell));
      }
    for (let j = 0; j < n; j++) {
      bctx.fillStyle = color(b[j] ?? 0);
      bctx.fillRect(j * cell, 0, Math.ceil(cell), bias.height);
    }
  }

  function drawNorms(): void {
    const norms = arr("norms");
    const sup = arr("superpos");
    const inter = arr("interference");
    const ablated = model.get("ablated");
    const smax = Math.max(1e-6, ...Array.from(sup));
    const imax = Math.max(1e-9, ...Array.from(inter));
    const x = scaleLinear().domain([0, Math.max(1, ...Array.from(norms))]).range([0, 100]);
    normsBox.replaceChildren(
      ...Array.from(norms, (v, i) => {
        const btn = control(
          h("button", {
            type: "button",
            class: `sw-norm${i === ablated ? " sw-ablated" : ""}`,
            "data-feature": i,
            "data-norm": v,
            "aria-pressed": i === ablated ? "true" : "false",
            "aria-label": `feature ${i}: norm ${v.toFixed(2)}; click to ablate`,
          }),
        );
        const fill = h("span", { class: "sw-norm-fill", style: `width:${x(v).toFixed(1)}%;background:${interpolateViridis(Math.min(1, (sup[i] ?? 0) / smax))}` });
        const hurt = h("span", { class: "sw-hurt", style: `width:${(((inter[i] ?? 0) / imax) * 100).toFixed(1)}%` });
        btn.append(h("span", { class: "sw-norm-label" }, String(i)), h("span", { class: "sw-norm-track" }, undefined, [fill, hurt]));
        return btn;
      }),
    );
  }

  function drawGeometry(): void {
    const m = model.get("n_hidden");
    const n = model.get("n_features");
    const W = arr("W");
    if (m === 2 && W.length === 2 * n) {
      const svg = svgRoot(220, 220, "feature directions in the hidden plane");
      const sc = scaleLinear().domain([-1.3, 1.3]).range([0, 220]);
      svg.append(s("circle", { cx: sc(0), cy: sc(0), r: sc(1) - sc(0), class: "sw-unit" }));
      for (let i = 0; i < n; i++) {
        const x = W[i];
        const y = W[n + i];
        svg.append(s("line", { x1: sc(0), y1: sc(0), x2: sc(x), y2: sc(-y), class: "sw-arrow", "data-feature": i }));
        // labels just past the arrow tip, kept inside the plot (a tip near the edge would clip its label)
        const lx = Math.min(212, Math.max(2, sc(x * 1.12) - 3));
        const ly = Math.min(218, Math.max(11, sc(-y * 1.12) + 4));
        svg.append(s("text", { x: lx, y: ly, class: "sw-arrow-label" }, String(i)));
      }
      geo.replaceChildren(svg);
      return;
    }
    const dims = arr("dims");
    const svg = svgRoot(260, 200, "feature dimensionality D_i");
    const x = scaleLinear().domain([0, Math.max(1, n - 1)]).range([24, 250]);
    const y = scaleLinear().domain([0, 1.05]).range([190, 10]);
    for (const [f, t] of FRACTIONS) {
      svg.append(s("line", { x1: 24, x2: 250, y1: y(f), y2: y(f), class: "sw-frac" }));
      svg.append(s("text", { x: 0, y: y(f) + 3, class: "sw-frac-label" }, t));
    }
    dims.forEach((v, i) => svg.append(s("circle", { cx: x(i), cy: y(v), r: 3, class: "sw-dot" })));
    geo.replaceChildren(svg);
  }

  function drawDstar(): void {
    const dens = arr("densities");
    const ds = arr("dstar");
    const svg = svgRoot(260, 180, "dimensions per feature against 1/(1-S)");
    const inv = Array.from(dens, (v) => 1 / Math.max(v, 1e-6));
    const x = scaleLog().domain([1, Math.max(2, ...inv)]).range([30, 250]);
    const y = scaleLinear().domain([0, Math.max(1, ...Array.from(ds))]).range([165, 10]);
    for (const f of [1, 0.5]) {
      svg.append(s("line", { x1: 30, x2: 250, y1: y(f), y2: y(f), class: "sw-frac" }));
      svg.append(s("text", { x: 2, y: y(f) + 3, class: "sw-frac-label" }, f === 1 ? "1" : "1/2"));
    }
    svg.append(s("text", { x: 140, y: 179, class: "sw-frac-label" }, "1/(1−S)"));
    ds.forEach((v, i) =>
      svg.append(s("circle", { cx: x(inv[i]), cy: y(v), r: i === 0 ? 5 : 3, class: i === 0 ? "sw-dot sw-chosen" : "sw-dot" })),
    );
    dstarBox.replaceChildren(svg);
  }

  function statusText(): string {
    const loss = model.get("loss").toExponential(2);
    if (model.get("training")) return `training… loss ${loss}`;
    const losses = arr("replica_losses");
    if (losses.length < 2) return `trained · loss ${loss}`;
    const worst = Math.max(...Array.from(losses)).toExponential(2);
    return `trained · loss ${loss} · best of ${losses.length} starts (start ${model.get("replica") + 1}; worst ${worst})`;
  }

  function renderAll(): void {
    const err = model.get("error");
    error.textContent = err;
    error.hidden = !err;
    const p = model.get("progress");
    bar.style.width = `${(p * 100).toFixed(0)}%`;
    progress.setAttribute("aria-valuenow", String(Math.round(p * 100)));
    status.textContent = statusText();
    root.classList.toggle("sw-busy", model.get("training"));
    showKnobs();
    drawHeat();
    drawNorms();
    drawGeometry();
    drawDstar();
    root.dataset.rev = String(model.get("rev"));
  }

  d.listen(normsBox, "click", (ev) => {
    const target = (ev.target as HTMLElement).closest("[data-feature]") as HTMLElement | null;
    if (!target) return;
    const f = Number(target.dataset.feature);
    conn.send({ type: "ablate", seq: ++seq, origin: "", feature: f === model.get("ablated") ? -1 : f });
  });
  renderAll();
  return () => d.dispose();
}

export default { render };
