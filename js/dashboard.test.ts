import { afterEach, beforeEach, describe, expect, test } from "vitest";
import dashboard, { filterLatents, histogram, moveCursor, OVERSCAN, ROW_HEIGHT, visibleRange, type DashboardState } from "./dashboard";
import { FakeModel as BaseFakeModel, permutations, queries, settled, WIDGET_BASE, wire, wireI32 } from "./testing/fake-model";

class FakeModel extends BaseFakeModel<DashboardState> {}



const XSS = "<img src=x onerror=alert(1)>";

function baseState(over: Partial<DashboardState> = {}): DashboardState {
  return {
    site: "hidden",
    n_inputs: 10,
    input_kind: "record",
    spatial_site: false,
    feature_names: ["latent 0", "latent 1", XSS, "latent 3"],
    class_names: ["benign", "malignant"],
    frequency: wire([0.5, 0, 0.25, 0.75], [4], 1),
    max_activation: wire([2, 0, 1, 3]),
    effect: wire([0.1, -0.1, 0, 0, -0.2, 0.2, 0.05, -0.05], [4, 2]),
    effect_inputs: 10,
    effect_candidates: 4,
    effect_pending: false,
    progress_done: 10,
    progress_total: 10,
    progress_what: "statistics",
    n_dead: 1,
    sort_by: "frequency",
    sort_class: 0,
    order: wireI32([3, 0, 2, 1]),
    selected: 3,
    n_active: 7,
    act_hist: wireI32([3, 2, 2]),
    act_edges: wire([0, 1, 2, 3]),
    top_indices: wireI32([4, 1]),
    top_values: wire([3, 2.5]),
    top_labels: ["benign", XSS],
    top_images: null,
    top_maps: null,
    top_tokens: [],
    top_positions: null,
    field_names: ["radius", "texture", "area"],
    field_units: ["mm", "", ""],
    top_fields: wireI32([0, 2, 1, 0], [2, 2]),
    top_field_values: wire([17.5, 900, 30, 12], [2, 2]),
    top_field_z: wire([2.5, 1.5, -2, -1], [2, 2]),
    effect_mode: "ablate",
    steer: 1,
    steer_max: 4,
    effect_class: 0,
    effect_hist: wireI32([1, 8, 1]),
    effect_edges: wire([-0.3, -0.1, 0.1, 0.3]),
    effect_flips: 2,
    effect_mean: wire([-0.05, 0.05]),
    factor_names: [],
    gt_corr: null,
    lab_linked: false,
    notice: "",
    ...WIDGET_BASE,
    ...over,
  };
}

let el: HTMLElement;
let model: FakeModel;
let cleanup: () => void;

function mount(over: Partial<DashboardState> = {}): void {
  model = new FakeModel(baseState(over));
  cleanup = dashboard.render({ model, el });
}

const { $, $$ } = queries(() => el);
const viewId = (): string => $(".sw-dash").getAttribute("data-view") ?? "";
const rows = (): HTMLElement[] => $$(".sw-flist .sw-frow");
const key = (k: string): void => {
  $(".sw-flist").dispatchEvent(new KeyboardEvent("keydown", { key: k, bubbles: true }));
};

/** What the kernel does after a request: the selected latent's views at once, rev last. */
function respond(seq: number, patch: Partial<DashboardState>): Promise<void> {
  return model.update({ seq, origin: viewId(), ...patch, rev: model.get("rev") + 1 });
}

beforeEach(() => {
  el = document.createElement("div");
  document.body.appendChild(el);
});

afterEach(() => {
  cleanup?.();
  el.remove();
});

describe("FeatureDashboard view", () => {
  test("lists the latents in the given order, dead ones flagged, names as text", () => {
    mount();
    expect(rows().map((r) => r.dataset.feature)).toEqual(["3", "0", "2", "1"]);
    const dead = rows().filter((r) => r.classList.contains("sw-dead"));
    expect(dead.map((r) => r.dataset.feature)).toEqual(["1"]);
    expect(dead[0].querySelector(".sw-badge")?.textContent).toBe("dead");
    expect(rows()[2].querySelector(".sw-fname")?.textContent).toBe(XSS);
    expect(el.querySelector("img")).toBeNull();
    expect(rows()[0].getAttribute("aria-selected")).toBe("true");
    expect(rows()[0].querySelector(".sw-freq-value")?.textContent).toBe("75.0%");
    expect(rows()[0].querySelector(".sw-eff")?.textContent).toBe("+0.050");
    expect($(".sw-list-info").textContent).toContain("4 latents · 1 dead");
    expect($(".sw-feature-title").textContent).toBe("latent 3");
    expect(model.sent).toHaveLength(0);
  });

  test("renders the histograms, top records with deviant fields, the effect summary", () => {
    mount();
    expect($$(".sw-act-hist rect").map((r) => Number(r.getAttribute("data-count")))).toEqual([3, 2, 2]);
    expect($$(".sw-effect-hist rect").map((r) => Number(r.getAttribute("data-count")))).toEqual([1, 8, 1]);
    expect($(".sw-effect-text").dataset.flips).toBe("2");
    expect($(".sw-effect-text").textContent).toBe("2 of 10 predictions flip · Δ benign");
    const ex = $$(".sw-example");
    expect(ex.map((e) => e.dataset.index)).toEqual(["4", "1"]);
    expect(ex[1].querySelector(".sw-caption")?.textContent).toBe(`#1 · 2.50 · ${XSS}`);
    const fields = Array.from(ex[0].querySelectorAll<HTMLElement>(".sw-field"));
    expect(fields.map((f) => f.dataset.field)).toEqual(["0", "2"]);
    expect(fields[0].textContent).toBe("radius 17.5 mm z +2.5");
    expect(fields[1].classList.contains("sw-high")).toBe(true);
    expect(ex[1].querySelector(".sw-field")?.classList.contains("sw-low")).toBe(true);
    expect($$(".sw-mean-row").map((r) => Number(r.dataset.mean))).toEqual([Math.fround(-0.05), Math.fround(0.05)]);
    expect($(".sw-gt-panel").hidden).toBe(true);
  });

  test("images: one canvas per top input, the map overlaid at a conv site", () => {
    const t = 4;
    const img = Array.from({ length: 2 * 3 * t * t }, (_, i) => (i % 7) / 7);
    mount({
      input_kind: "image",
      spatial_site: true,
      top_fields: null,
      top_field_values: null,
      top_field_z: null,
      top_images: wire(img, [2, 3, t, t]),
      top_maps: wire([0, 1, 2, 3, 0, 0, 0, 5], [2, 2, 2]),
      factor_names: ["soma size", "puncta"],
      gt_corr: wire([0.2, -0.8]),
    });
    const canvases = $$<HTMLCanvasElement>(".sw-example canvas.sw-thumb");
    expect(canvases).toHaveLength(2);
    expect(canvases.every((c) => c.dataset.map === "on" && c.width === t)).toBe(true);
    expect($$(".sw-gt-row").map((r) => r.dataset.factor)).toEqual(["1", "0"]);
    expect($(".sw-gt-panel").hidden).toBe(false);
  });

  test("a click selects a latent: one coalesced request; stale answers are dropped", async () => {
    mount();
    rows()[1].click();
    expect(model.sent).toHaveLength(1);
    expect(model.sent[0].content).toEqual({ type: "request", seq: 1, origin: viewId(), feature: 0, mode: "ablate", steer: 1, effect_class: 0 });
    expect($(".sw-dash").classList.contains("sw-busy")).toBe(true);
    expect(rows()[1].classList.contains("sw-selected")).toBe(true);
    // two more clicks while the first is in flight: only the latest is kept
    rows()[2].click();
    rows()[3].click();
    expect(model.sent).toHaveLength(1);
    await respond(1, { selected: 0, n_active: 5, act_hist: wireI32([5]), act_edges: wire([0, 2]) });
    expect(model.sent).toHaveLength(2);
    expect(model.sent[1].content.feature).toBe(1);
    // the answer to request 1 is shown while 2 is in flight, but the list keeps the user's choice
    expect(rows()[3].classList.contains("sw-selected")).toBe(true);
    await respond(2, { selected: 1, n_active: 0, act_hist: wireI32([0]), top_indices: wireI32([]), top_values: wire([]) });
    expect($(".sw-dash").classList.contains("sw-busy")).toBe(false);
    expect($(".sw-dash").dataset.selected).toBe("1");
    expect($(".sw-feature-stats").textContent).toBe("dead: never active on the 10 inputs");
    expect($(".sw-empty").textContent).toBe("no input activates this latent");
    // a late duplicate of request 1 is stale: dropped
    const rev = $(".sw-dash").dataset.rev;
    await model.update({ seq: 1, origin: viewId(), selected: 0, rev: model.get("rev") + 1 });
    expect($(".sw-dash").dataset.selected).toBe("1");
    expect($(".sw-dash").dataset.rev).toBe(rev);
  });

  test("keyboard: arrows move the cursor, Enter selects", () => {
    mount();
    const list = $(".sw-flist");
    expect(list.getAttribute("tabindex")).toBe("0");
    expect($(".sw-dash").dataset.cursor).toBe("3");
    key("ArrowDown");
    key("ArrowDown");
    expect($(".sw-dash").dataset.cursor).toBe("2");
    expect(list.getAttribute("aria-activedescendant")).toBe(rows()[2].id);
    expect(model.sent).toHaveLength(0);
    key("Enter");
    expect(model.sent).toHaveLength(1);
    expect(model.sent[0].content.feature).toBe(2);
    key("End");
    expect($(".sw-dash").dataset.cursor).toBe("1");
    key("Home");
    expect($(".sw-dash").dataset.cursor).toBe("3");
    key("x");
    expect($(".sw-dash").dataset.cursor).toBe("3");
  });

  test("Enter in the go-to box selects once (the change that follows is not sent again)", () => {
    mount();
    const go = $<HTMLInputElement>(".sw-goto");
    go.value = "2";
    go.dispatchEvent(new Event("input", { bubbles: true }));
    go.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
    expect(model.sent.map((m) => m.content.feature)).toEqual([2]);
    go.dispatchEvent(new Event("change", { bubbles: true }));
    expect(model.sent).toHaveLength(1);
  });

  test("moveCursor clamps to the list", () => {
    expect(moveCursor(0, "ArrowUp", 5)).toBe(0);
    expect(moveCursor(4, "ArrowDown", 5)).toBe(4);
    expect(moveCursor(2, "PageDown", 5)).toBe(4);
    expect(moveCursor(2, "End", 5)).toBe(4);
    expect(moveCursor(2, "Tab", 5)).toBeNull();
    expect(moveCursor(0, "ArrowDown", 0)).toBeNull();
  });

  test("effect controls: steer mode and strength go out in the request", async () => {
    mount();
    const slider = $<HTMLInputElement>(".sw-steer");
    expect(slider.disabled).toBe(true);
    expect(slider.max).toBe("4");
    const steer = $$<HTMLInputElement>(".sw-mode")[1];
    steer.checked = true;
    steer.dispatchEvent(new Event("change", { bubbles: true }));
    expect(slider.disabled).toBe(false);
    expect(model.sent[0].content).toMatchObject({ type: "request", feature: 3, mode: "steer", steer: 1 });
    slider.value = "-2";
    slider.dispatchEvent(new Event("input", { bubbles: true }));
    expect(model.sent).toHaveLength(1); // coalesced behind the first
    await respond(1, { effect_mode: "steer" });
    expect(model.sent[1].content).toMatchObject({ mode: "steer", steer: -2 });
    const cls = $<HTMLSelectElement>(".sw-effect-class");
    expect(Array.from(cls.options).map((o) => o.textContent)).toEqual(["benign", "malignant"]);
  });

  test("sort, go-to and Open in FeatureLab send messages; errors and notices show as text", async () => {
    mount();
    const sort = $<HTMLSelectElement>(".sw-sort");
    expect(Array.from(sort.options).map((o) => o.value)).toEqual([
      "frequency", "max_activation", "index", "effect:0", "effect:1", "attribution:0", "attribution:1",
    ]);
    sort.value = "effect:1";
    sort.dispatchEvent(new Event("change", { bubbles: true }));
    expect(model.sent[0].content).toEqual({ type: "sort", seq: 0, origin: "", by: "effect", class: 1 });
    await model.update({ order: wireI32([1, 2, 3, 0]), sort_by: "effect", sort_class: 1, rev: 2 });
    expect(rows().map((r) => r.dataset.feature)).toEqual(["1", "2", "3", "0"]);
    expect(sort.value).toBe("effect:1");
    // attribution to a class on one input: Python sends the order; the menu names the input
    sort.value = "attribution:0";
    sort.dispatchEvent(new Event("change", { bubbles: true }));
    expect(model.sent[1].content).toEqual({ type: "sort", seq: 0, origin: "", by: "attribution", class: 0 });
    await model.update({ order: wireI32([3, 0, 2, 1]), sort_by: "attribution", sort_class: 0, sort_input: 7, rev: 3 });
    expect(rows().map((r) => r.dataset.feature)).toEqual(["3", "0", "2", "1"]);
    expect(sort.value).toBe("attribution:0");
    expect(sort.selectedOptions[0].textContent).toBe("attribution to benign (input 7)");
    model.sent.length = 0;
    await model.update({ order: wireI32([1, 2, 3, 0]), sort_by: "effect", sort_class: 1, rev: 4 });
    const go = $<HTMLInputElement>(".sw-goto");
    go.value = "99";
    go.dispatchEvent(new Event("change", { bubbles: true }));
    expect(model.sent[0].content).toMatchObject({ type: "request", feature: 99 });
    await model.update({ seq: 1, origin: viewId(), error: XSS, rev: 5 });
    expect($(".sw-error").textContent).toBe(XSS);
    expect($(".sw-error").hidden).toBe(false);
    expect($(".sw-dash").dataset.selected).toBe("3");
    $<HTMLButtonElement>(".sw-open-lab").click();
    expect(model.sent[1].content).toEqual({ type: "open_lab", seq: 0, origin: "", feature: 3 });
    await model.update({ notice: "opened latent 3 in a new FeatureLab", lab_linked: true, rev: 6 });
    expect($(".sw-notice").textContent).toBe("opened latent 3 in a new FeatureLab");
  });

  test("every focusable control suppresses JupyterLab shortcuts", () => {
    mount();
    const focusable = $$("button, input, select, [tabindex]");
    expect(focusable.length).toBeGreaterThan(6);
    for (const c of focusable) expect(c.getAttribute("data-lm-suppress-shortcuts")).toBe("true");
  });

  test("cleanup removes every listener and the view", () => {
    mount();
    expect(model.listenerCount()).toBeGreaterThan(0);
    cleanup();
    expect(model.listenerCount()).toBe(0);
    expect(el.querySelector(".sw-dash")).toBeNull();
    cleanup = () => undefined;
  });

  test("histogram helper colours signed bins", () => {
    const svg = histogram(Int32Array.from([1, 0, 2]), Float32Array.from([-1, -0.1, 0.1, 1]), "x", true);
    const cls = Array.from(svg.querySelectorAll("rect")).map((r) => r.getAttribute("class"));
    expect(cls).toEqual(["sw-bin sw-neg", "sw-bin sw-zero", "sw-bin sw-pos"]);
  });
});

describe("token inputs", () => {
  test("top inputs show their tokens as text, shaded by the latent's code at each position", () => {
    mount({
      top_indices: wireI32([4, 1]),
      top_values: wire([3, 2.5]),
      top_labels: ["", ""],
      top_fields: null,
      top_field_values: null,
      top_field_z: null,
      top_tokens: [["a", XSS, "c"], ["d", "e", "f"]],
      top_positions: wire([0, 3, 1, 2.5, 0, 0], [2, 3]),
    });
    const strips = $$(".sw-example .sw-tokens");
    expect(strips).toHaveLength(2);
    const chips = [...strips[0].querySelectorAll<HTMLElement>(".sw-token")];
    expect(chips.map((c) => c.textContent)).toEqual(["a", XSS, "c"]);
    expect(el.querySelector(".sw-example img")).toBeNull();
    expect(chips.map((c) => Number(c.dataset.act))).toEqual([0, 3, 1]);
    expect(chips[1].style.background).toContain("0.85"); // the peak is the strongest shade
    expect(chips[0].style.background).toContain("0.000"); // zero code: unshaded
  });
});

describe("any key order, any batching (marimo applies an update one key at a time)", () => {
  test("every order of an answer's keys, each key in its own task or not, shows the latest answer and settles", async () => {
    const keys = ["rev", "seq", "origin", "selected", "n_active"] as const;
    const answer = (seq: number, order: readonly string[], split: boolean, c: Partial<DashboardState>): Promise<void> =>
      model.updateOneByOne({ rev: model.get("rev") + 1, seq, origin: viewId(), ...c }, order as Array<keyof DashboardState>, split);
    for (const [k, order] of permutations(keys).entries()) {
      // one key at a time in every order; split over tasks in every fifth order (all 120 take twice as long)
      for (const split of k % 5 === 0 ? [false, true] : [false]) {
        mount();
        rows()[1].click(); // latent 0: seq 1
        rows()[2].click(); // latent 2: waits
        await answer(1, order, split, { selected: 0, n_active: 5 });
        expect(model.sent).toHaveLength(2);
        expect(model.sent[1].content).toMatchObject({ seq: 2, feature: 2 });
        expect($(".sw-dash").classList.contains("sw-busy")).toBe(true);
        expect(rows()[2].classList.contains("sw-selected")).toBe(true); // the user's choice stays
        await answer(2, order, split, { selected: 2, n_active: 3 });
        expect(model.sent).toHaveLength(2);
        expect($(".sw-dash").classList.contains("sw-busy")).toBe(false);
        expect($(".sw-dash").dataset.selected).toBe("2");
        expect($(".sw-dash").dataset.rev).toBe("3");
        expect(rows().filter((r) => r.classList.contains("sw-selected")).map((r) => r.dataset.feature)).toEqual(["2"]);
        cleanup();
        await settled();
      }
    }
  }, 60_000);
});

describe("tens of thousands of latents: a virtual list and a search box", () => {
  const L = 24576;
  function big(over: Partial<DashboardState> = {}): Partial<DashboardState> {
    const names = Array.from({ length: L }, (_, i) => (i === 777 ? `apostrophe ${XSS}` : `latent ${i}`));
    const freq = Array.from({ length: L }, (_, i) => (i % 3 === 0 ? 0 : ((i * 7919) % 1000) / 1000));
    const order = Array.from({ length: L }, (_, i) => i).sort((a, b) => freq[b] - freq[a] || a - b);
    return {
      feature_names: names,
      frequency: wire(freq),
      max_activation: wire(freq.map((f) => 2 * f)),
      effect: null,
      effect_candidates: 256,
      n_dead: L / 3,
      order: wireI32(order),
      selected: order[0],
      ...over,
    };
  }
  const most = Math.ceil(440 / ROW_HEIGHT) + 2 * OVERSCAN + 1; // the rows in view plus the overscan

  test("renders only the rows in view, rebuilt on scroll, with a spacer as tall as every row", () => {
    mount(big());
    const order = Array.from(new Int32Array((model.get("order") as { view: DataView }).view.buffer));
    expect(rows().length).toBeLessThanOrEqual(most);
    expect(rows()[0].dataset.feature).toBe(String(order[0]));
    expect(rows()[0].classList.contains("sw-selected")).toBe(true);
    expect($(".sw-fspacer").style.height).toBe(`${L * ROW_HEIGHT}px`);
    const list = $(".sw-flist");
    list.scrollTop = 10_000 * ROW_HEIGHT;
    list.dispatchEvent(new Event("scroll"));
    const shown = rows().map((r) => Number(r.dataset.pos));
    expect(rows().length).toBeLessThanOrEqual(most);
    expect(Math.min(...shown)).toBe(10_000 - OVERSCAN);
    expect(rows().find((r) => r.dataset.pos === "10000")?.dataset.feature).toBe(String(order[10_000]));
    expect(rows().find((r) => r.dataset.pos === "10000")?.style.top).toBe(`${10_000 * ROW_HEIGHT}px`);
    // End moves the cursor to the last latent and scrolls it into view
    key("End");
    expect($(".sw-dash").dataset.cursor).toBe(String(order[L - 1]));
    expect(rows().some((r) => r.dataset.pos === String(L - 1))).toBe(true);
    expect(rows().length).toBeLessThanOrEqual(most);
    expect($(".sw-flist").getAttribute("aria-activedescendant")).toBe(`${viewId()}-f${order[L - 1]}`);
  });

  test("the search box filters by index or name; Enter selects the first match", () => {
    mount(big());
    const box = $<HTMLInputElement>(".sw-search");
    expect(box.getAttribute("data-lm-suppress-shortcuts")).toBe("true");
    box.value = "apos";
    box.dispatchEvent(new Event("input", { bubbles: true }));
    expect(rows().map((r) => r.dataset.feature)).toEqual(["777"]);
    expect(rows()[0].querySelector(".sw-fname")?.textContent).toBe(`apostrophe ${XSS}`);
    expect(el.querySelector(".sw-flist img")).toBeNull();
    expect($(".sw-list-info").textContent).toContain("1 match “apos”");
    box.value = "1234";
    box.dispatchEvent(new Event("input", { bubbles: true }));
    const hits = rows().map((r) => Number(r.dataset.feature));
    expect(hits[0]).toBe(1234); // the index first, then names containing it
    expect(hits.slice(1).every((f) => String(f).includes("1234"))).toBe(true);
    box.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
    expect(model.sent.map((m) => m.content.feature)).toEqual([1234]);
    box.value = "";
    box.dispatchEvent(new Event("input", { bubbles: true }));
    expect(rows().length).toBeLessThanOrEqual(most);
    expect($(".sw-fspacer").style.height).toBe(`${L * ROW_HEIGHT}px`);
  });

  test("effect sorts are offered before the column exists; latents outside the candidates show no value", async () => {
    mount(big());
    const sort = $<HTMLSelectElement>(".sw-sort");
    expect(Array.from(sort.options).map((o) => o.value)).toContain("effect:1");
    const eff = new Array(L * 2).fill(Number.NaN);
    const order = Array.from(new Int32Array((model.get("order") as { view: DataView }).view.buffer));
    eff[order[0] * 2] = -0.25;
    await model.update({ effect: wire(eff, [L, 2]), sort_by: "effect", rev: 2 });
    expect(rows()[0].querySelector(".sw-eff")?.textContent).toBe("-0.250");
    const other = rows().find((r) => !r.classList.contains("sw-dead") && r.dataset.pos !== "0");
    expect(other?.querySelector(".sw-eff")?.textContent).toBe("");
    expect($(".sw-list-info").textContent).toContain("(the 256 most frequent latents)");
  });

  test("progress shows while Python computes; a pending effect is asked for when the view opens", async () => {
    mount({ effect_pending: true, effect_hist: null, effect_edges: null, effect_mean: null });
    expect(model.sent).toHaveLength(1);
    expect(model.sent[0].content).toMatchObject({ type: "request", feature: 3 });
    expect($(".sw-effect-text").textContent).toBe("computing the effect on the cohort…");
    expect($(".sw-progress-row").hidden).toBe(true);
    const rev = $(".sw-dash").dataset.rev;
    await model.update({ progress_what: "effects", progress_done: 3, progress_total: 16 });
    expect($(".sw-progress-row").hidden).toBe(false);
    expect($(".sw-progress-text").textContent).toBe("effects: 3 of 16");
    expect($(".sw-dash").dataset.rev).toBe(rev); // progress alone re-renders nothing else
    await respond(1, { progress_done: 16, effect_pending: false, effect_hist: wireI32([1, 8, 1]), effect_edges: wire([-0.3, -0.1, 0.1, 0.3]) });
    expect($(".sw-progress-row").hidden).toBe(true);
    expect($(".sw-effect-text").dataset.pending).toBe("false");
  });

  test("visibleRange and filterLatents", () => {
    expect(visibleRange(0, 440, 24576)).toEqual([0, 22 + OVERSCAN]);
    expect(visibleRange(200 * ROW_HEIGHT, 440, 24576)).toEqual([200 - OVERSCAN, 222 + OVERSCAN]);
    expect(visibleRange(24570 * ROW_HEIGHT, 440, 24576)).toEqual([24570 - OVERSCAN, 24576]);
    expect(visibleRange(0, 440, 3)).toEqual([0, 3]);
    expect(filterLatents([2, 0, 1], ["a", "Ab", "cab"], "AB")).toEqual([2, 1]); // in list order
    expect(filterLatents([2, 0, 1], ["a", "b", "c"], " 1 ")).toEqual([1]);
    expect(filterLatents([2, 0, 1], ["a", "b", "c"], "")).toEqual([2, 0, 1]);
    expect(filterLatents([0, 1], ["a", "b"], "7")).toEqual([]);
    expect(filterLatents([2, 0, 1, 12], ["a", "b 1", "c", "x", "", "", "", "", "", "", "", "", "d"], "#1")).toEqual([1]);
    expect(filterLatents([2, 0, 1, 12], ["a", "b", "c 1", "x", "", "", "", "", "", "", "", "", "d 1"], "1")).toEqual([1, 2, 12]);
  });
});
