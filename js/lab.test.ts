import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { render, type LabState } from "./lab";
import { FakeModel as BaseFakeModel, queries, WIDGET_BASE, type Sent, wire, wireI32 } from "./testing/fake-model";

class FakeModel extends BaseFakeModel<LabState> {}

const f32 = (xs: number[]): number[] => xs.map(Math.fround);

function baseState(over: Partial<LabState> = {}): LabState {
  return {
    site: "mlp.0",
    feature_names: ["alpha", "beta", "gamma"],
    class_names: ["benign", "malignant"],
    n_inputs: 5,
    index: 0,
    input_label: "sample 0 (benign)",
    ablated: [],
    steer: wire([0, 0, 0]),
    steer_max: 4,
    baseline: wire([0.7, 0.3], [2], 1),
    edited: wire([0.6, 0.4], [2], 2),
    activations: wire([0.5, -1.25, 2]),
    readout: "softmax",
    image: null,
    channel_names: [],
    selected: -1,
    spatial: null,
    positions: null,
    input_tokens: [],
    generated_baseline: "",
    generated_edited: "",
    text_input: false,
    text_edited: "",
    gallery: null,
    gallery_indices: null,
    factor_names: [],
    gt_corr: null,
    record_names: [],
    record_units: [],
    record_levels: {},
    record: null,
    record_edited: false,
    cohort_class: 0,
    cohort_hist: wireI32([1, 0, 3]),
    cohort_edges: wire([-0.3, -0.1, 0.1, 0.3]),
    cohort_flips: 2,
    cohort_top: wireI32([4, 2]),
    cohort_top_delta: wire([-0.25, 0.125]),
    ...WIDGET_BASE,
    ...over,
  };
}

let el: HTMLElement;
let model: FakeModel;
let cleanup: () => void;

function mount(over: Partial<LabState> = {}): void {
  model = new FakeModel(baseState(over));
  cleanup = render({ model, el });
}

const { $, $$ } = queries(() => el);
const viewId = (): string => $(".sw-lab").getAttribute("data-view") ?? "";
const preds = (attr: "data-baseline" | "data-edited"): number[] => $$(".sw-pred").map((r) => Number(r.getAttribute(attr)));
const sliders = (): HTMLInputElement[] => $$<HTMLInputElement>(".sw-slider");
const toggles = (): HTMLInputElement[] => $$<HTMLInputElement>(".sw-toggle");
const steerOf = (s: Sent): number[] => {
  expect(s.buffers).toHaveLength(1);
  const b = s.buffers[0];
  expect(b).toBeInstanceOf(ArrayBuffer);
  return Array.from(new Float32Array(b as ArrayBuffer));
};

/** What the kernel does after computing a request: set the outputs at once, rev last. */
function respond(seq: number, edited: number[], extra: Partial<LabState> = {}): void {
  model.update({ seq, origin: viewId(), edited: wire(edited), rev: model.get("rev") + 1, ...extra });
}

function slide(i: number, value: number): void {
  const s = sliders()[i];
  s.value = String(value);
  s.dispatchEvent(new Event("input", { bubbles: true }));
}

beforeEach(() => {
  el = document.createElement("div");
  document.body.appendChild(el);
});

afterEach(() => {
  cleanup?.();
  el.remove();
});

describe("FeatureLab view", () => {
  test("renders one .sw-pred row per class with baseline/edited attributes", () => {
    mount();
    const rows = $$(".sw-pred");
    expect(rows).toHaveLength(2);
    expect(rows.map((r) => r.getAttribute("data-class"))).toEqual(["0", "1"]);
    expect(preds("data-baseline")).toEqual(f32([0.7, 0.3]));
    expect(preds("data-edited")).toEqual(f32([0.6, 0.4]));
    expect(rows.map((r) => r.querySelector(".sw-class-name")?.textContent)).toEqual(["benign", "malignant"]);
    expect($$(".sw-feature")).toHaveLength(3);
    expect(toggles().every((t) => t.checked)).toBe(true);
    expect($(".sw-lab").dataset.rev).toBe("1");
    expect($(".sw-input-label").textContent).toBe("sample 0 (benign)");
    expect($(".sw-error").hidden).toBe(true);
    expect(model.sent).toHaveLength(0);
  });

  test("every input and button carries data-lm-suppress-shortcuts", () => {
    mount();
    const controls = $$("input, button, select, textarea");
    // prev, next, index, reset, channel select, map checkbox, record restore, feature order, the text box
    // and its two buttons + a toggle, a name button and a slider per feature + one button per most-affected input
    expect(controls.length).toBe(11 + 3 * 3 + 2);
    for (const c of controls) expect(c.getAttribute("data-lm-suppress-shortcuts")).toBe("true");
  });

  test("unchecking a toggle sends one request with ablated=[i] and one float32 buffer", () => {
    mount();
    const t = toggles()[1];
    t.checked = false;
    t.dispatchEvent(new Event("change", { bubbles: true }));
    expect(model.sent).toHaveLength(1);
    const [msg] = model.sent;
    expect(msg.content).toEqual({ type: "request", seq: 1, origin: viewId(), index: 0, ablated: [1] });
    expect(steerOf(msg)).toEqual([0, 0, 0]);
    expect($$(".sw-feature")[1].classList.contains("sw-off")).toBe(true);
    expect($(".sw-lab").classList.contains("sw-busy")).toBe(true);
  });

  test("10 quick slider moves send one request, then exactly one more with the latest value", () => {
    mount();
    const values = [0.1, 0.3, 0.5, 0.8, 1.1, 1.4, 1.7, 2.0, 2.3, 2.6];
    for (const v of values) slide(2, v);
    expect(model.sent).toHaveLength(1);
    expect(model.sent[0].content).toMatchObject({ type: "request", seq: 1, ablated: [] });
    expect(steerOf(model.sent[0])).toEqual(f32([0, 0, 0.1]));

    respond(1, [0.55, 0.45]);
    expect(model.sent).toHaveLength(2);
    expect(model.sent[1].content).toMatchObject({ type: "request", seq: 2, origin: viewId() });
    expect(steerOf(model.sent[1])).toEqual(f32([0, 0, 2.6]));
    // the response to seq 1 is shown while seq 2 is in flight
    expect(preds("data-edited")).toEqual(f32([0.55, 0.45]));

    respond(2, [0.2, 0.8]);
    expect(model.sent).toHaveLength(2);
    expect(preds("data-edited")).toEqual(f32([0.2, 0.8]));
    expect($(".sw-lab").classList.contains("sw-busy")).toBe(false);
  });

  test("a stale response (older seq from this view) does not change the DOM", () => {
    mount();
    slide(0, 1); // seq 1
    slide(0, 2); // pending
    respond(1, [0.5, 0.5]); // sends seq 2
    respond(2, [0.1, 0.9]);
    expect(model.sent).toHaveLength(2);
    const before = el.innerHTML;
    expect(preds("data-edited")).toEqual(f32([0.1, 0.9]));

    // a late duplicate answer to seq 1 arrives after seq 2 was shown
    respond(1, [0.99, 0.01], { input_label: "should not show", error: "should not show" });
    expect(el.innerHTML).toBe(before);
    expect(preds("data-edited")).toEqual(f32([0.1, 0.9]));
    expect($(".sw-error").hidden).toBe(true);
    expect(model.sent).toHaveLength(2);
  });

  test("an error shows in .sw-error and a later rev with an empty error hides it", () => {
    mount();
    model.update({ error: "site mlp.9 not found", rev: 2 });
    const err = $(".sw-error");
    expect(err.hidden).toBe(false);
    expect(err.textContent).toBe("site mlp.9 not found");
    model.update({ error: "", rev: 3 });
    expect(err.hidden).toBe(true);
    expect(err.textContent).toBe("");
  });

  test("HTML in class and feature names is shown as text", () => {
    const evil = "<img src=x onerror=alert(1)>";
    mount({ class_names: [evil, "b"], feature_names: [evil, "f1", "f2"] });
    expect(el.querySelector("img")).toBeNull();
    expect($$(".sw-class-name")[0].textContent).toBe(evil);
    expect($$(".sw-feature-name")[0].textContent).toBe(evil);
  });

  test("a response from another view refreshes controls from the model", () => {
    mount();
    model.update({ ablated: [2], index: 3, rev: 2, origin: "someone-else", seq: 7 });
    expect(toggles().map((t) => t.checked)).toEqual([true, true, false]);
    expect($<HTMLInputElement>(".sw-index").value).toBe("3");
  });

  test("cleanup removes every model listener and the DOM", () => {
    mount();
    const slider = sliders()[0];
    expect(model.listenerCount()).toBeGreaterThan(0);
    cleanup();
    expect(model.listenerCount()).toBe(0);
    expect(el.querySelector(".sw-lab")).toBeNull();
    expect(el.childNodes).toHaveLength(0);
    // detached controls no longer talk to the model
    slider.value = "1";
    slider.dispatchEvent(new Event("input"));
    expect(model.sent).toHaveLength(0);
    model.update({ error: "late", rev: 9 });
    expect(el.childNodes).toHaveLength(0);
  });
});

describe("cohort view", () => {
  test("shows the histogram, the flips and the most affected inputs, and loads one on click", () => {
    mount();
    const cohort = el.querySelector(".sw-cohort") as HTMLElement;
    expect(cohort.hidden).toBe(false);
    expect(cohort.dataset.flips).toBe("2");
    expect(el.querySelector(".sw-cohort-text")?.textContent).toBe("2 of 4 predictions flip");
    const counts = [...el.querySelectorAll(".sw-hist rect")].map((r) => Number(r.getAttribute("data-count")));
    expect(counts).toEqual([1, 0, 3]);
    const items = [...el.querySelectorAll<HTMLButtonElement>(".sw-top-item")];
    expect(items.map((b) => b.dataset.index)).toEqual(["4", "2"]);
    expect(items[0].textContent).toBe("#4 Δ -0.250");
    expect(items.every((b) => b.getAttribute("data-lm-suppress-shortcuts") === "true")).toBe(true);
    items[0].click();
    expect(model.sent).toHaveLength(1);
    expect(model.sent[0].content).toMatchObject({ type: "request", index: 4 });
  });

  test("is hidden when the widget has no cohort summary", () => {
    mount({ cohort_hist: null, cohort_edges: null, cohort_top: null, cohort_top_delta: null });
    expect((el.querySelector(".sw-cohort") as HTMLElement).hidden).toBe(true);
  });
});

describe("ground truth and selection", () => {
  test("clicking a feature name asks Python to select it; correlations render sorted by strength", () => {
    mount({ factor_names: ["soma", "neurite", "puncta"], selected: 1, gt_corr: wire([0.1, -0.75, 0.5]) });
    const rows = [...el.querySelectorAll<HTMLElement>(".sw-gt-row")];
    expect(rows.map((r) => r.dataset.factor)).toEqual(["1", "2", "0"]);
    expect(rows[0].querySelector(".sw-gt-bar")?.classList.contains("sw-neg")).toBe(true);
    expect(el.querySelector(".sw-feature.sw-selected")?.getAttribute("data-feature")).toBe("1");
    (el.querySelector('[data-select="2"]') as HTMLButtonElement).click();
    expect(model.sent[model.sent.length - 1]?.content).toMatchObject({ type: "select", feature: 2 });
    (el.querySelector('[data-select="1"]') as HTMLButtonElement).click();
    expect(model.sent[model.sent.length - 1]?.content).toMatchObject({ type: "select", feature: -1 }); // a second click clears
  });

  test("the image and ground-truth panels are hidden for tabular inputs", () => {
    mount();
    expect((el.querySelector(".sw-image-panel") as HTMLElement).hidden).toBe(true);
    expect((el.querySelector(".sw-gt-panel") as HTMLElement).hidden).toBe(true);
  });
});

describe("record form", () => {
  test("shows raw values and sends an edited field as a partial record", () => {
    mount({ record_names: ["radius", "texture"], record_units: ["px", ""], record: wire([14.5, 25.25]) });
    expect([...el.querySelectorAll(".sw-record-field span")].map((x) => x.textContent)).toEqual(["radius (px)", "texture"]);
    const inputs = [...el.querySelectorAll<HTMLInputElement>(".sw-record input")];
    expect(inputs.map((i) => Number(i.value))).toEqual([14.5, 25.25]);
    expect(inputs.every((i) => i.getAttribute("data-lm-suppress-shortcuts") === "true")).toBe(true);
    inputs[1].value = "30";
    inputs[1].dispatchEvent(new Event("change", { bubbles: true }));
    expect(model.sent[model.sent.length - 1]?.content).toMatchObject({ type: "record", values: { texture: 30 } });
    (el.querySelector(".sw-record-reset") as HTMLButtonElement).click();
    expect(model.sent[model.sent.length - 1]?.content).toMatchObject({ type: "record", reset: true });
  });

  test("a categorical field is a choice of its level names and sends the level's index", () => {
    mount({
      record_names: ["soma_area", "genotype"],
      record_units: ["µm²", ""],
      record_levels: { genotype: ["wild type", "LRRK2", "GBA", "SNCA"] },
      record: wire([120, 2]),
    });
    const select = el.querySelector<HTMLSelectElement>(".sw-record select");
    expect(select).not.toBeNull();
    expect([...select!.options].map((o) => o.textContent)).toEqual(["wild type", "LRRK2", "GBA", "SNCA"]);
    expect(select!.value).toBe("2");
    expect(select!.getAttribute("data-lm-suppress-shortcuts")).toBe("true");
    expect(el.querySelectorAll(".sw-record input").length).toBe(1);
    select!.value = "3";
    select!.dispatchEvent(new Event("change", { bubbles: true }));
    expect(model.sent[model.sent.length - 1]?.content).toMatchObject({ type: "record", values: { genotype: 3 } });
  });
});

describe("token inputs", () => {
  test("the shown input's tokens, as text, highlighted by the selected feature at each position", () => {
    mount({ input_tokens: ["The", " cat", "<img src=x onerror=alert(1)>"], selected: 1, positions: wire([0.5, -1, 0]) });
    const chips = $$(".sw-token");
    expect(chips.map((c) => c.textContent)).toEqual(["The", " cat", "<img src=x onerror=alert(1)>"]);
    expect(el.querySelector(".sw-token img")).toBeNull();
    expect(chips.map((c) => Number(c.dataset.act))).toEqual([0.5, -1, 0]);
    expect(chips[1].style.background).toContain("25, 118, 210"); // negative: blue, strongest
    expect($(".sw-tokens-title").textContent).toContain("at each token");
    expect($<HTMLElement>(".sw-token-panel").hidden).toBe(false);
  });

  test("no selection: tokens without highlight; no tokens: the panel is hidden", () => {
    mount({ input_tokens: ["a", "b"], selected: -1, positions: null });
    expect($$(".sw-token").every((c) => c.dataset.act === undefined)).toBe(true);
    expect($(".sw-tokens-title").textContent).toContain("click a feature");
    cleanup();
    el.replaceChildren();
    mount({ input_tokens: [] });
    expect($<HTMLElement>(".sw-token-panel").hidden).toBe(true);
  });
});

describe("feature order", () => {
  test("most active first reorders the rows by |activation| on this input; edits do not move them", () => {
    mount(); // activations [0.5, -1.25, 2]
    const order = (): number[] => $$(".sw-feature").map((r) => Number(r.dataset.feature));
    expect(order()).toEqual([0, 1, 2]);
    const select = $<HTMLSelectElement>(".sw-order");
    select.value = "activation";
    select.dispatchEvent(new Event("change"));
    expect(order()).toEqual([2, 1, 0]);
    // a toggle in the moved rows still edits its own feature
    toggles()[0].click(); // the first toggle in DOM order is now feature 2's (rows keep their controls)
    expect(model.sent[model.sent.length - 1].content.ablated).toEqual([2]);
    model.update({ activations: wire([3, 0, 1]), rev: 2 }); // same input: no reordering on a response
    expect(order()).toEqual([2, 1, 0]);
    model.update({ index: 1, activations: wire([3, 0, 1]), rev: 3 }); // another input: reordered
    expect(order()).toEqual([0, 2, 1]);
    select.value = "index";
    select.dispatchEvent(new Event("change"));
    expect(order()).toEqual([0, 1, 2]);
  });
});

describe("continuations", () => {
  test("both continuations as text; the edited one marks where it departs; hidden when not generating", () => {
    mount({ generated_baseline: "suite\\n", generated_edited: "su=<b>x</b>" });
    expect($(".sw-gen-base").textContent).toBe("suite\\n");
    expect($(".sw-gen-edit").textContent).toBe("su=<b>x</b>");
    expect($(".sw-gen-edit .sw-diverged").textContent).toBe("=<b>x</b>");
    expect(el.querySelector(".sw-generate b")).toBeNull();
    expect($(".sw-generate").dataset.diverge).toBe("2");
    model.update({ generated_edited: "suite\\n", rev: 2 });
    expect($(".sw-generate").dataset.diverge).toBe("");
    cleanup();
    el.replaceChildren();
    mount();
    expect($<HTMLElement>(".sw-generate").hidden).toBe(true);
  });
});

describe("typed text", () => {
  test("the text box sends the typed text (button or Ctrl+Enter) and a reset; hidden without encode=", () => {
    mount({ input_tokens: ["a", "b"], text_input: true });
    const box = $<HTMLTextAreaElement>(".sw-text");
    expect($<HTMLElement>(".sw-text-form").hidden).toBe(false);
    expect($<HTMLButtonElement>(".sw-text-reset").disabled).toBe(true);
    box.value = "The value of x";
    $<HTMLButtonElement>(".sw-text-run").click();
    expect(model.sent[model.sent.length - 1].content).toEqual({ type: "text", seq: 0, origin: "", text: "The value of x" });
    box.value = "x = 1";
    box.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", ctrlKey: true }));
    expect(model.sent[model.sent.length - 1].content).toMatchObject({ type: "text", text: "x = 1" });
    model.update({ text_edited: "x = 1", input_tokens: ["x", " ", "=", " ", "1"], rev: 2 });
    expect($<HTMLButtonElement>(".sw-text-reset").disabled).toBe(false);
    $<HTMLButtonElement>(".sw-text-reset").click();
    expect(model.sent[model.sent.length - 1].content).toEqual({ type: "text", seq: 0, origin: "", reset: true });
    cleanup();
    el.replaceChildren();
    mount({ input_tokens: ["a"], text_input: false });
    expect($<HTMLElement>(".sw-text-form").hidden).toBe(true);
  });
});
