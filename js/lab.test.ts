import { afterEach, beforeEach, describe, expect, test } from "vitest";
import lab, { LAB_ROW_HEIGHT, type LabState, VIRTUAL_AT } from "./lab";
import { OVERSCAN } from "./lib/virtual";
import { FakeModel as BaseFakeModel, permutations, queries, type Sent, wire, wireI32 } from "./testing/fake-model";
import { NEEDS_KERNEL } from "./lib/protocol";
import { labState as baseState } from "./testing/lab-state";

class FakeModel extends BaseFakeModel<LabState> {}

const f32 = (xs: number[]): number[] => xs.map(Math.fround);


let el: HTMLElement;
let model: FakeModel;
let cleanup: () => void;

function mount(over: Partial<LabState> = {}): void {
  model = new FakeModel(baseState(over));
  cleanup = lab.render({ model, el });
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
function respond(seq: number, edited: number[], extra: Partial<LabState> = {}): Promise<void> {
  return model.update({ seq, origin: viewId(), edited: wire(edited), rev: model.get("rev") + 1, ...extra });
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
    // prev, next, index, reset, channel select, map checkbox, record restore, feature order, feature search,
    // the text box and its two buttons + a toggle, a name button and a slider per feature + one button per
    // most-affected input
    expect(controls.length).toBe(12 + 3 * 3 + 2);
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

  test("10 quick slider moves send one request, then exactly one more with the latest value", async () => {
    mount();
    const values = [0.1, 0.3, 0.5, 0.8, 1.1, 1.4, 1.7, 2.0, 2.3, 2.6];
    for (const v of values) slide(2, v);
    expect(model.sent).toHaveLength(1);
    expect(model.sent[0].content).toMatchObject({ type: "request", seq: 1, ablated: [] });
    expect(steerOf(model.sent[0])).toEqual(f32([0, 0, 0.1]));

    await respond(1, [0.55, 0.45]);
    expect(model.sent).toHaveLength(2);
    expect(model.sent[1].content).toMatchObject({ type: "request", seq: 2, origin: viewId() });
    expect(steerOf(model.sent[1])).toEqual(f32([0, 0, 2.6]));
    // the response to seq 1 is shown while seq 2 is in flight
    expect(preds("data-edited")).toEqual(f32([0.55, 0.45]));

    await respond(2, [0.2, 0.8]);
    expect(model.sent).toHaveLength(2);
    expect(preds("data-edited")).toEqual(f32([0.2, 0.8]));
    expect($(".sw-lab").classList.contains("sw-busy")).toBe(false);
  });

  test("a stale response (older seq from this view) does not change the DOM", async () => {
    mount();
    slide(0, 1); // seq 1
    slide(0, 2); // pending
    await respond(1, [0.5, 0.5]); // sends seq 2
    await respond(2, [0.1, 0.9]);
    expect(model.sent).toHaveLength(2);
    const before = el.innerHTML;
    expect(preds("data-edited")).toEqual(f32([0.1, 0.9]));

    // a late duplicate answer to seq 1 arrives after seq 2 was shown
    await respond(1, [0.99, 0.01], { input_label: "should not show", error: "should not show" });
    expect(el.innerHTML).toBe(before);
    expect(preds("data-edited")).toEqual(f32([0.1, 0.9]));
    expect($(".sw-error").hidden).toBe(true);
    expect(model.sent).toHaveLength(2);
  });

  test("an error shows in .sw-error and a later rev with an empty error hides it", async () => {
    mount();
    await model.update({ error: "site mlp.9 not found", rev: 2 });
    const err = $(".sw-error");
    expect(err.hidden).toBe(false);
    expect(err.textContent).toBe("site mlp.9 not found");
    await model.update({ error: "", rev: 3 });
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

  test("a response from another view refreshes controls from the model", async () => {
    mount();
    await model.update({ ablated: [2], index: 3, rev: 2, origin: "someone-else", seq: 7 });
    expect(toggles().map((t) => t.checked)).toEqual([true, true, false]);
    expect($<HTMLInputElement>(".sw-index").value).toBe("3");
  });

  test("cleanup removes every model listener and the DOM", async () => {
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
    await model.update({ error: "late", rev: 9 });
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

  test("says it is updating: the previous summary dimmed, then each partial with k/n, then the complete one", async () => {
    mount({ cohort_done: 4, cohort_total: 4 });
    const cohort = $(".sw-cohort");
    const progress = $(".sw-cohort-progress");
    const counts = (): number[] => $$(".sw-hist rect").map((r) => Number(r.getAttribute("data-count")));
    expect(progress.hidden).toBe(true);
    expect(cohort.classList.contains("sw-stale") || cohort.classList.contains("sw-partial")).toBe(false);
    // an edit: the shown input's update carries cohort_done = 0; the old summary stays, dimmed
    await model.update({ edited: wire([0.5, 0.5]), cohort_done: 0, rev: 2 });
    expect(cohort.hidden).toBe(false);
    expect(cohort.classList.contains("sw-stale")).toBe(true);
    expect(progress.hidden).toBe(false);
    expect(progress.textContent).toBe("updating 0/4");
    expect(counts()).toEqual([1, 0, 3]);
    // the first chunk's running summary, in its own message (no rev bump)
    await model.update({ cohort_hist: wireI32([0, 2, 0]), cohort_flips: 1, cohort_top: wireI32([1]), cohort_done: 2 });
    expect(cohort.classList.contains("sw-stale")).toBe(false);
    expect(cohort.classList.contains("sw-partial")).toBe(true);
    expect(progress.textContent).toBe("updating 2/4");
    expect(cohort.dataset.done).toBe("2");
    expect(counts()).toEqual([0, 2, 0]);
    expect($(".sw-cohort h4").textContent).toBe("cohort: change of benign over the first 2 of 4 inputs");
    expect($(".sw-cohort-text").textContent).toBe("1 of 2 predictions flip so far");
    expect($(".sw-lab").dataset.rev).toBe("2");
    await model.update({ cohort_hist: wireI32([1, 2, 1]), cohort_flips: 3, cohort_done: 4 });
    expect(progress.hidden).toBe(true);
    expect(cohort.classList.contains("sw-partial")).toBe(false);
    expect($(".sw-cohort-text").textContent).toBe("3 of 4 predictions flip");
    expect(model.sent).toHaveLength(0);
  });

  test("before the first partial of a new cohort there is only the progress", async () => {
    mount({ cohort_hist: null, cohort_edges: null, cohort_top: null, cohort_top_delta: null, cohort_done: 0, cohort_total: 9 });
    expect($(".sw-cohort").hidden).toBe(false);
    expect($(".sw-cohort-progress").textContent).toBe("updating 0/9");
    expect($$(".sw-hist rect")).toHaveLength(0);
  });

  test("a partial summary leaves a request in flight alone: the slider keeps the user's value", async () => {
    mount({ cohort_done: 4, cohort_total: 4 });
    slide(1, 2);
    expect(model.sent).toHaveLength(1);
    expect($(".sw-lab").classList.contains("sw-busy")).toBe(true);
    await model.update({ cohort_done: 1, cohort_hist: wireI32([0, 1, 0]) });
    expect($(".sw-lab").classList.contains("sw-busy")).toBe(true);
    expect(sliders()[1].value).toBe("2");
    expect($(".sw-cohort-progress").textContent).toBe("updating 1/4");
    slide(1, 3); // still one request in flight: the new value waits
    expect(model.sent).toHaveLength(1);
    await respond(1, [0.2, 0.8], { steer: wire([0, 2, 0]), cohort_done: 0 });
    expect(model.sent).toHaveLength(2); // the answer releases the waiting value
    expect(steerOf(model.sent[1])).toEqual([0, 3, 0]);
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
  test("most active first reorders the rows by |activation| on this input; edits do not move them", async () => {
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
    await model.update({ activations: wire([3, 0, 1]), rev: 2 }); // same input: no reordering on a response
    expect(order()).toEqual([2, 1, 0]);
    await model.update({ index: 1, activations: wire([3, 0, 1]), rev: 3 }); // another input: reordered
    expect(order()).toEqual([0, 2, 1]);
    select.value = "index";
    select.dispatchEvent(new Event("change"));
    expect(order()).toEqual([0, 1, 2]);
  });
});

describe("thousands of features (a 24,576-latent SAE)", () => {
  const K = 24_576;
  const big = (): Partial<LabState> => {
    const acts = new Array<number>(K).fill(0);
    acts[20_000] = 5;
    acts[7] = -3;
    return {
      feature_names: Array.from({ length: K }, (_, i) => (i === 12_345 ? "glial marker" : `latent ${i}`)),
      steer: wire(new Array<number>(K).fill(0)),
      activations: wire(acts),
    };
  };
  const shownRows = (): number[] => $$(".sw-feature").map((r) => Number(r.dataset.feature));
  const most = Math.ceil(420 / LAB_ROW_HEIGHT) + 2 * OVERSCAN + 1;

  test("only the rows in view are in the DOM; scrolling renders others; their controls edit their own feature", () => {
    mount(big());
    expect(K).toBeGreaterThan(VIRTUAL_AT);
    const list = $(".sw-features");
    expect(list.classList.contains("sw-virtual")).toBe(true);
    expect($(".sw-fspacer").style.height).toBe(`${K * LAB_ROW_HEIGHT}px`);
    expect(shownRows().length).toBeLessThanOrEqual(most);
    expect(shownRows()[0]).toBe(0);
    list.scrollTop = 10_000 * LAB_ROW_HEIGHT;
    list.dispatchEvent(new Event("scroll"));
    return new Promise<void>((done) =>
      requestAnimationFrame(() => {
        const rows = shownRows();
        expect(rows.length).toBeLessThanOrEqual(most);
        expect(Math.min(...rows)).toBe(10_000 - OVERSCAN);
        const row = $$(".sw-feature").find((r) => r.dataset.feature === "10003") as HTMLElement;
        expect(row.style.top).toBe(`${10_003 * LAB_ROW_HEIGHT}px`);
        const slider = row.querySelector(".sw-slider") as HTMLInputElement;
        slider.value = "2";
        slider.dispatchEvent(new Event("input", { bubbles: true }));
        const sent = model.sent[model.sent.length - 1];
        const v = steerOf(sent);
        expect(v).toHaveLength(K);
        expect(v[10_003]).toBe(2);
        expect(v.filter((x) => x !== 0)).toHaveLength(1);
        done();
      }),
    );
  });

  test("a new input keeps the list where it was scrolled (by index); most active first starts at the top", async () => {
    mount(big());
    const list = $(".sw-features");
    list.scrollTop = 5_000 * LAB_ROW_HEIGHT;
    list.dispatchEvent(new Event("scroll"));
    await new Promise<void>((done) => requestAnimationFrame(() => done()));
    await model.update({ index: 1, rev: 2 });
    expect(list.scrollTop).toBe(5_000 * LAB_ROW_HEIGHT);
    expect(Math.min(...shownRows())).toBe(5_000 - OVERSCAN);
    const select = $<HTMLSelectElement>(".sw-order");
    select.value = "activation";
    select.dispatchEvent(new Event("change"));
    expect(list.scrollTop).toBe(0);
    expect(shownRows()[0]).toBe(20_000);
  });

  test("search finds a feature by #index or by name; blank shows all again", () => {
    mount(big());
    const search = $<HTMLInputElement>(".sw-search");
    search.value = "#20000";
    search.dispatchEvent(new Event("input"));
    expect(shownRows()).toEqual([20_000]);
    expect($(".sw-list-info").textContent).toContain(`1 of ${K} features match`);
    search.value = "GLIAL";
    search.dispatchEvent(new Event("input"));
    expect(shownRows()).toEqual([12_345]);
    (($(".sw-feature") as HTMLElement).querySelector(".sw-toggle") as HTMLInputElement).click();
    expect(model.sent[model.sent.length - 1].content.ablated).toEqual([12_345]);
    search.value = "";
    search.dispatchEvent(new Event("input"));
    expect(shownRows()[0]).toBe(0);
  });

  test("most active first puts the active latents on top", () => {
    mount(big());
    const select = $<HTMLSelectElement>(".sw-order");
    select.value = "activation";
    select.dispatchEvent(new Event("change"));
    expect(shownRows().slice(0, 2)).toEqual([20_000, 7]);
  });

  test("attribution asks Python for the order and shows the order it sends", async () => {
    mount(big());
    const select = $<HTMLSelectElement>(".sw-order");
    select.value = "attribution";
    select.dispatchEvent(new Event("change"));
    const sent = model.sent[model.sent.length - 1].content;
    expect(sent).toMatchObject({ type: "order", by: "attribution" });
    expect($(".sw-list-info").textContent).toBe("computing attribution…");
    const order = Array.from({ length: K }, (_, i) => K - 1 - i);
    await model.update({ order_by: "attribution", feature_order: wireI32(order), order_target: 1, rev: 2 });
    expect(shownRows().slice(0, 3)).toEqual([K - 1, K - 2, K - 3]);
    expect($(".sw-list-info").textContent).toContain("ordered by attribution to malignant");
    select.value = "index";
    select.dispatchEvent(new Event("change"));
    expect(model.sent[model.sent.length - 1].content).toMatchObject({ type: "order", by: "index" });
    expect(shownRows()[0]).toBe(0);
  });

  test("a small list filters in place (every row stays; non-matching ones are hidden)", () => {
    mount();
    const search = $<HTMLInputElement>(".sw-search");
    search.value = "amm";
    search.dispatchEvent(new Event("input"));
    expect($$(".sw-feature").filter((r) => !r.hidden).map((r) => r.dataset.feature)).toEqual(["2"]);
    expect($$(".sw-feature")).toHaveLength(3);
  });
});

describe("continuations", () => {
  test("both continuations as text; the edited one marks where it departs; hidden when not generating", async () => {
    mount({ generated_baseline: "suite\\n", generated_edited: "su=<b>x</b>" });
    expect($(".sw-gen-base").textContent).toBe("suite\\n");
    expect($(".sw-gen-edit").textContent).toBe("su=<b>x</b>");
    expect($(".sw-gen-edit .sw-diverged").textContent).toBe("=<b>x</b>");
    expect(el.querySelector(".sw-generate b")).toBeNull();
    expect($(".sw-generate").dataset.diverge).toBe("2");
    await model.update({ generated_edited: "suite\\n", rev: 2 });
    expect($(".sw-generate").dataset.diverge).toBe("");
    cleanup();
    el.replaceChildren();
    mount();
    expect($<HTMLElement>(".sw-generate").hidden).toBe(true);
  });
});

describe("typed text", () => {
  test("the text box sends the typed text (button or Ctrl+Enter) and a reset; hidden without encode=", async () => {
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
    await model.update({ text_edited: "x = 1", input_tokens: ["x", " ", "=", " ", "1"], rev: 2 });
    expect($<HTMLButtonElement>(".sw-text-reset").disabled).toBe(false);
    $<HTMLButtonElement>(".sw-text-reset").click();
    expect(model.sent[model.sent.length - 1].content).toEqual({ type: "text", seq: 0, origin: "", reset: true });
    cleanup();
    el.replaceChildren();
    mount({ input_tokens: ["a"], text_input: false });
    expect($<HTMLElement>(".sw-text-form").hidden).toBe(true);
  });
});

describe("any key order, any batching (marimo applies an update one key at a time)", () => {
  const KEYS = ["rev", "seq", "origin", "edited", "steer"] as const;

  /** The kernel's answer to request `seq`: the controls it computed for and the outputs, in `order`. */
  const answer = (seq: number, order: readonly string[], split: boolean, c: Partial<LabState>): Promise<void> =>
    model.updateOneByOne({ rev: model.get("rev") + 1, seq, origin: viewId(), ...c }, order as Array<keyof LabState>, split);

  test("every order of an answer's keys, each key in its own task or not, shows the latest answer and settles", async () => {
    let runs = 0;
    for (const [k, order] of permutations(KEYS).entries()) {
      // one key at a time in every order; split over tasks in every fifth order (all 120 take twice as long)
      for (const split of k % 5 === 0 ? [false, true] : [false]) {
        mount();
        slide(1, 2); // seq 1
        slide(2, -1); // waits for the answer to seq 1
        await answer(1, order, split, { steer: wire([0, 2, 0]), edited: wire([0.9, 0.1]) });
        // the answer to 1 is shown; 2 went out with the user's latest value, which stays on screen
        expect(model.sent).toHaveLength(2);
        expect(steerOf(model.sent[1])).toEqual([0, 2, -1]);
        expect(preds("data-edited")).toEqual(f32([0.9, 0.1]));
        expect($(".sw-status").textContent).toBe("updating…");
        expect(sliders().map((x) => x.value)).toEqual(["0", "2", "-1"]);
        await answer(2, order, split, { steer: wire([0, 2, -1]), edited: wire([0.2, 0.8]) });
        expect(model.sent).toHaveLength(2);
        expect(preds("data-edited")).toEqual(f32([0.2, 0.8]));
        expect($(".sw-status").textContent).toBe("");
        expect($(".sw-lab").classList.contains("sw-busy")).toBe(false);
        expect(sliders().map((x) => x.value)).toEqual(["0", "2", "-1"]);
        expect($(".sw-lab").dataset.rev).toBe("3");
        cleanup();
        runs += 1;
      }
    }
    expect(runs).toBe(120 + 24);
  }, 60_000);

  test("a change made from Python, in every key order, resets the controls to it", async () => {
    for (const order of permutations(["rev", "seq", "origin", "steer", "index"] as const)) {
      mount();
      slide(1, 2); // seq 1
      await model.updateOneByOne({ rev: 2, seq: 1, origin: viewId(), steer: wire([0, 2, 0]) }, [...order]);
      expect(sliders()[1].value).toBe("2");
      await model.updateOneByOne({ rev: 3, seq: 0, origin: "", steer: wire([0, 0, 3]), index: 4 }, [...order]);
      expect(sliders().map((x) => x.value)).toEqual(["0", "0", "3"]);
      expect($<HTMLInputElement>(".sw-index").value).toBe("4");
      expect($(".sw-status").textContent).toBe("");
      cleanup();
    }
  }, 60_000);
});

describe("a page without a kernel (nbconvert HTML export: ipywidgets marks the view disconnected)", () => {
  test("a moved control says it needs a running Jupyter kernel, sends nothing and keeps the saved state", async () => {
    el.classList.add("jupyter-widgets-disconnected");
    mount();
    slide(1, 2);
    await Promise.resolve();
    await Promise.resolve();
    expect(model.sent).toHaveLength(0);
    expect($(".sw-error").hidden).toBe(false);
    expect($(".sw-error").textContent).toBe(NEEDS_KERNEL);
    expect($(".sw-error").textContent).toContain("needs a running Jupyter kernel");
    expect(sliders()[1].value).toBe("0");
    expect(preds("data-edited")).toEqual(f32([0.6, 0.4]));
    expect($(".sw-lab").classList.contains("sw-busy")).toBe(false);
    $$<HTMLElement>(".sw-feature-name")[0].click(); // a one-off message: the same
    expect(model.sent).toHaveLength(0);
  });
});
