import { afterEach, beforeEach, describe, expect, test } from "vitest";
import align, { coupledWeights, frameFor, nearestPoint, topCoupled, type AlignState } from "./align";
import { FakeModel as BaseFakeModel, permutations, queries, WIDGET_BASE, wire, wireI32 } from "./testing/fake-model";

class FakeModel extends BaseFakeModel<AlignState> {}



// 3 A points, 4 B points; row 0 sends its mass to B 1 (mostly) and B 3
const COUPLING = [0, 0.8, 0, 0.2, 0.5, 0, 0.5, 0, 0, 0, 0.05, 0.95];

function baseState(over: Partial<AlignState> = {}): AlignState {
  return {
    names: ["image", "expression"],
    live: true,
    coupling: wire(COUPLING, [3, 4], 1),
    embed_a: wire([0, 0, 1, 0, 0, 1], [3, 2]),
    embed_b: wire([0, 0, 2, 0, 0, 2, 2, 2], [4, 2], 2),
    labels_a: wireI32([0, 0, 1]),
    labels_b: wireI32([0, 0, 1, 1]),
    index_a: wireI32([10, 11, 12]),
    index_b: wireI32([20, 21, 22, 23]),
    class_names: ["control", "<img src=x onerror=alert(1)>"],
    confusion: { view: new DataView(new Int32Array([2, 0, 1, 0]).buffer), dtype: "int32", shape: [2, 2] },
    scores: { label_transfer_argmax: 0.5, foscttm: 0.25, gw_cost: 0.01, n_iter: 21, converged: true, seconds: 0.2 },
    baseline_scores: { label_transfer_argmax: 0.75, foscttm: 0.1, gw_cost: 0.01, n_iter: 11, converged: true, seconds: 0.2 },
    epsilon: 0.005,
    feature_names: ["latent 0", "latent 1", "latent 2"],
    ablated: [],
    steer_feature: -1,
    steer_alpha: 0,
    steer_max: 2,
    busy: false,
    ...WIDGET_BASE,
    ...over,
  };
}

let el: HTMLElement;
let model: FakeModel;
let cleanup: () => void;

function mount(over: Partial<AlignState> = {}): void {
  model = new FakeModel(baseState(over));
  cleanup = align.render({ model, el });
}

const { $, $$ } = queries(() => el);
const viewId = (): string => $(".sw-align").getAttribute("data-view") ?? "";

/** Move the mouse over point `i` of an embedding canvas, using the frame the view publishes. */
function hoverPoint(canvas: HTMLCanvasElement, xy: number[], i: number): void {
  const [ox, oy, k] = (canvas.dataset.transform ?? "").split(",").map(Number);
  const ev = new MouseEvent("mousemove", { clientX: ox + k * xy[2 * i], clientY: oy - k * xy[2 * i + 1], bubbles: true });
  canvas.dispatchEvent(ev);
}

beforeEach(() => {
  el = document.createElement("div");
  document.body.appendChild(el);
});

afterEach(() => {
  cleanup?.();
  el.remove();
});

describe("helpers", () => {
  test("coupledWeights reads a row (from A) or a column (from B)", () => {
    expect(Array.from(coupledWeights(COUPLING, 3, 4, "a", 0))).toEqual([0, 0.8, 0, 0.2].map(Math.fround));
    expect(Array.from(coupledWeights(COUPLING, 3, 4, "b", 2))).toEqual([0, 0.5, 0.05].map(Math.fround));
  });

  test("topCoupled: largest first, drops points under 10% of the top, caps the count", () => {
    expect(topCoupled([0, 0.8, 0, 0.2])).toEqual([1, 3]);
    expect(topCoupled([0.5, 0.04, 0.5])).toEqual([0, 2]);
    expect(topCoupled([0, 0, 0])).toEqual([]);
    expect(topCoupled([3, 2, 1], 2)).toEqual([0, 1]);
  });

  test("frameFor keeps the aspect ratio and nearestPoint finds points within the radius", () => {
    const xy = [0, 0, 4, 0, 0, 2];
    const f = frameFor(xy, 3, 100, 10);
    expect(f.k).toBeCloseTo(20);
    expect(nearestPoint(xy, 3, f, f.ox + f.k * 4, f.oy, 3)).toBe(1);
    expect(nearestPoint(xy, 3, f, f.ox + f.k * 2, f.oy - f.k * 1, 3)).toBe(-1);
  });
});

describe("AlignmentView view", () => {
  test("renders panels, scores with the baseline, confusion matrix as text", () => {
    mount();
    expect($(".sw-heat").dataset.rows).toBe("3");
    expect($(".sw-heat").dataset.cols).toBe("4");
    expect($(".sw-title").textContent).toContain("image ↔ expression");
    const cells = $$(".sw-confusion td").map((c) => Number(c.dataset.count));
    expect(cells).toEqual([2, 0, 1, 0]);
    // labels render as text, never HTML
    expect($$(".sw-confusion img")).toHaveLength(0);
    expect($$(".sw-confusion th").some((t) => t.textContent === "<img src=x onerror=alert(1)>")).toBe(true);
    expect($$(".sw-legend img")).toHaveLength(0);
    const score = $('[data-score="foscttm"]');
    expect(score.textContent).toBe("0.250");
    // not edited: no baseline column
    expect($$(".sw-scores thead th")).toHaveLength(2);
    expect($(".sw-error").hidden).toBe(true);
    expect($(".sw-edit-panel").hidden).toBe(false);
  });

  test("every control carries data-lm-suppress-shortcuts", () => {
    mount();
    const controls = $$("input, button, select, textarea");
    expect(controls.length).toBe(5); // epsilon, feature, ablate, steer, reset
    for (const c of controls) expect(c.getAttribute("data-lm-suppress-shortcuts")).toBe("true");
  });

  test("hovering an A point highlights its coupled B points, and the reverse", () => {
    mount();
    const a = $<HTMLCanvasElement>(".sw-embed-a");
    const b = $<HTMLCanvasElement>(".sw-embed-b");
    expect(b.dataset.highlight).toBe("");
    hoverPoint(a, [0, 0, 1, 0, 0, 1], 0);
    expect(a.dataset.hover).toBe("0");
    expect(b.dataset.highlight).toBe("1,3");
    expect($(".sw-hover-text").textContent).toContain("#10");
    hoverPoint(b, [0, 0, 2, 0, 0, 2, 2, 2], 2);
    expect(b.dataset.hover).toBe("2");
    expect(a.dataset.highlight).toBe("1,2");
    b.dispatchEvent(new MouseEvent("mouseleave"));
    expect(a.dataset.highlight).toBe("");
  });

  test("ablate sends one coalesced edit; responses in order; a stale one is dropped", async () => {
    mount();
    const box = $<HTMLInputElement>(".sw-ablate");
    box.checked = true;
    box.dispatchEvent(new Event("change"));
    expect(model.sent).toHaveLength(1);
    expect(model.sent[0].content).toEqual({
      type: "edit",
      seq: 1,
      origin: viewId(),
      ablated: [0],
      steer_feature: -1,
      steer_alpha: 0,
      epsilon: 0.005,
    });
    expect($(".sw-align").classList.contains("sw-busy")).toBe(true);
    expect($(".sw-status").textContent).toBe("aligning…");
    // slider moves while the first request is in flight: one more request with the latest value
    const slider = $<HTMLInputElement>(".sw-steer");
    for (const v of [0.2, 0.6, 1.0]) {
      slider.value = String(v);
      slider.dispatchEvent(new Event("input"));
    }
    expect(model.sent).toHaveLength(1);
    await model.update({ seq: 1, origin: viewId(), ablated: [0], rev: 2, scores: { foscttm: 0.3 } });
    expect(model.sent).toHaveLength(2);
    expect(model.sent[1].content).toMatchObject({ seq: 2, ablated: [0], steer_feature: 0, steer_alpha: 1 });
    await model.update({ seq: 2, origin: viewId(), ablated: [0], steer_feature: 0, steer_alpha: 1, rev: 3, scores: { foscttm: 0.4 } });
    expect($('[data-score="foscttm"]').textContent).toBe("0.400");
    expect($(".sw-align").classList.contains("sw-busy")).toBe(false);
    expect($$(".sw-scores thead th")).toHaveLength(4); // edited: baseline and Δ columns
    expect($(".sw-edit-text").textContent).toContain("ablated: latent 0");
    const before = el.innerHTML;
    await model.update({ seq: 1, origin: viewId(), rev: 4, scores: { foscttm: 0.9 }, error: "late" });
    expect(el.innerHTML).toBe(before);
  });

  test("errors show as text in the error area; busy from Python shows too", async () => {
    mount();
    await model.update({ busy: true });
    expect($(".sw-align").dataset.busy).toBe("true");
    await model.update({ busy: false, error: "<b>ablated features [99] are out of range</b>", rev: 2 });
    expect($(".sw-error").hidden).toBe(false);
    expect($(".sw-error").textContent).toBe("<b>ablated features [99] are out of range</b>");
    expect($$(".sw-error b")).toHaveLength(0);
    expect($(".sw-align").dataset.busy).toBe("false");
  });

  test("point clouds (not live) hide the edit controls; epsilon edits still request", () => {
    mount({ live: false, feature_names: [] });
    expect($(".sw-edit-panel").hidden).toBe(true);
    const eps = $<HTMLInputElement>(".sw-epsilon");
    eps.value = "0.02";
    eps.dispatchEvent(new Event("change"));
    expect(model.sent[0].content).toMatchObject({ type: "edit", epsilon: 0.02 });
    eps.value = "-1";
    eps.dispatchEvent(new Event("change"));
    expect(model.sent).toHaveLength(1);
  });

  test("cleanup removes the DOM and every model listener", () => {
    mount();
    expect(model.listenerCount()).toBeGreaterThan(0);
    cleanup();
    expect(model.listenerCount()).toBe(0);
    expect(el.children).toHaveLength(0);
    cleanup = () => {};
  });
});

describe("any key order, any batching (marimo applies an update one key at a time)", () => {
  test("every order of an answer's keys, each key in its own task or not, shows the latest answer and settles", async () => {
    const keys = ["rev", "seq", "origin", "ablated", "scores"] as const;
    const answer = (seq: number, order: readonly string[], split: boolean, c: Partial<AlignState>): Promise<void> =>
      model.updateOneByOne({ rev: model.get("rev") + 1, seq, origin: viewId(), ...c }, order as Array<keyof AlignState>, split);
    for (const [k, order] of permutations(keys).entries()) {
      // one key at a time in every order; split over tasks in every fifth order (all 120 take twice as long)
      for (const split of k % 5 === 0 ? [false, true] : [false]) {
        mount();
        const box = $<HTMLInputElement>(".sw-ablate");
        box.checked = true;
        box.dispatchEvent(new Event("change")); // seq 1: ablate latent 0
        const slider = $<HTMLInputElement>(".sw-steer");
        slider.value = "1";
        slider.dispatchEvent(new Event("input")); // waits
        await answer(1, order, split, { ablated: [0], scores: { foscttm: 0.3 } });
        expect(model.sent).toHaveLength(2);
        expect($('[data-score="foscttm"]').textContent).toBe("0.300");
        expect($(".sw-align").dataset.busy).toBe("true");
        await answer(2, order, split, { ablated: [0], scores: { foscttm: 0.4 }, steer_feature: 0, steer_alpha: 1 });
        expect($('[data-score="foscttm"]').textContent).toBe("0.400");
        expect($(".sw-align").dataset.busy).toBe("false");
        expect($(".sw-status").textContent).toBe("");
        expect($(".sw-edit-text").textContent).toContain("ablated: latent 0");
        expect($(".sw-align").dataset.rev).toBe("3");
        cleanup();
      }
    }
  }, 60_000);
});
