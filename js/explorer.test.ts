import { afterEach, beforeEach, expect, test, vi } from "vitest";
import explorer, { type ExplorerState } from "./explorer";
import { FakeModel as BaseFakeModel, permutations, queries, settled, WIDGET_BASE, wire } from "./testing/fake-model";

class FakeModel extends BaseFakeModel<ExplorerState> {}


function state(over: Partial<ExplorerState> = {}): ExplorerState {
  return {
    n_features: 3,
    n_hidden: 2,
    density: 0.2,
    importance_decay: 0.9,
    weight_decay: 0,
    relu: true,
    n_instances: 4,
    replicas: 3,
    replica: 1,
    replica_losses: wire([0.07, 0.05, 0.06]),
    W: wire([1, 0, -1, 0, 1, 0], [2, 3]),
    b: wire([0, 0, 0]),
    WtW: wire([1, 0, -1, 0, 1, 0, -1, 0, 1], [3, 3]),
    norms: wire([1, 1, 1]),
    superpos: wire([1, 0, 1]),
    dims: wire([0.5, 1, 0.5]),
    densities: wire([0.2, 1, 0.1, 0.01]),
    dstar: wire([0.7, 1, 0.5, 0.4]),
    interference: wire([0, 0, 0]),
    loss: 0.05,
    progress: 1,
    training: false,
    ablated: -1,
    ...WIDGET_BASE,
    ...over,
  };
}

let el: HTMLElement;
let cleanup: () => void;
let model: FakeModel;
const { $ } = queries(() => el);

beforeEach(() => {
  el = document.createElement("div");
  document.body.appendChild(el);
  vi.useFakeTimers();
});

afterEach(() => {
  cleanup?.();
  el.remove();
  vi.useRealTimers();
});

test("the status says which of the replicas is shown and how far the worst one was", async () => {
  model = new FakeModel(state());
  cleanup = explorer.render({ model, el });
  expect($(".sw-status").textContent).toBe("trained · loss 5.00e-2 · best of 3 starts (start 2; worst 7.00e-2)");
  await model.update({ replica_losses: wire([0.05]), replicas: 1, replica: 0, rev: 2 });
  expect($(".sw-status").textContent).toBe("trained · loss 5.00e-2");
  await model.update({ training: true, replica_losses: wire([]), rev: 3 });
  expect($(".sw-status").textContent).toBe("training… loss 5.00e-2");
});

test("knobs send only what changed, debounced into one message", () => {
  model = new FakeModel(state());
  cleanup = explorer.render({ model, el });
  const knob = $<HTMLInputElement>("input.sw-knob-replicas");
  expect(knob.value).toBe("3");
  knob.value = "5";
  knob.dispatchEvent(new Event("change"));
  vi.advanceTimersByTime(200);
  expect(model.sent).toHaveLength(1);
  expect(model.sent[0].content).toEqual({ type: "settings", seq: 1, origin: "", replicas: 5 });
  // a rejected value typed into another knob is not re-sent with later changes
  const m = $<HTMLInputElement>("input.sw-knob-n_hidden");
  m.value = "500";
  m.dispatchEvent(new Event("change"));
  vi.advanceTimersByTime(200);
  expect(model.sent[1].content).toMatchObject({ n_hidden: 500 });
  const density = $<HTMLInputElement>("input.sw-knob-density");
  density.value = "-1";
  density.dispatchEvent(new Event("input"));
  knob.value = "2";
  knob.dispatchEvent(new Event("change"));
  vi.advanceTimersByTime(200);
  expect(model.sent).toHaveLength(3); // both changes in one debounced message
  expect(model.sent[2].content).toEqual({ type: "settings", seq: 3, origin: "", density: expect.closeTo(0.1, 5), replicas: 2 });
  cleanup();
  expect(model.listenerCount()).toBe(0);
  cleanup = () => undefined;
});

test("arrow labels stay inside the plane's plot, even for a direction at the edge", () => {
  // feature 0 points straight up with norm 1.25: its label would sit above the SVG's top edge
  model = new FakeModel(state({ W: wire([0, 1, -1, 1.25, 0, 0], [2, 3]) }));
  cleanup = explorer.render({ model, el });
  const labels = [...el.querySelectorAll("text.sw-arrow-label")].map((t) => [Number(t.getAttribute("x")), Number(t.getAttribute("y"))]);
  expect(labels).toHaveLength(3);
  for (const [x, y] of labels) {
    expect(x).toBeGreaterThanOrEqual(0);
    expect(x).toBeLessThanOrEqual(220 - 8);
    expect(y).toBeGreaterThanOrEqual(10);
    expect(y).toBeLessThanOrEqual(220);
  }
});

test("every order of an update's keys, each key in its own task or not, is shown whole", async () => {
  const keys = ["rev", "ablated", "interference", "loss", "training"] as const;
  for (const [k, order] of permutations(keys).entries()) {
    // one key at a time in every order; split over tasks in every fifth order (all 120 take twice as long)
    for (const split of k % 5 === 0 ? [false, true] : [false]) {
      model = new FakeModel(state({ training: true }));
      cleanup = explorer.render({ model, el });
      $<HTMLElement>('.sw-norms [data-feature="1"]').click();
      expect(model.sent[0].content).toMatchObject({ type: "ablate", feature: 1 });
      const patch: Partial<ExplorerState> = { rev: 2, ablated: 1, interference: wire([0.5, 0, 0.25]), loss: 0.04, training: false };
      await model.updateOneByOne(patch, [...order], split);
      expect($(".sw-status").textContent).toBe("trained · loss 4.00e-2 · best of 3 starts (start 2; worst 7.00e-2)");
      expect($(".sw-explorer").classList.contains("sw-busy")).toBe(false);
      expect($(".sw-explorer").dataset.rev).toBe("2");
      expect($('.sw-norms [data-feature="1"]').classList.contains("sw-ablated")).toBe(true);
      cleanup();
    }
  }
}, 60_000);

test("on a page without a kernel (nbconvert HTML), a moved knob goes back and says it needs one", async () => {
  el.classList.add("jupyter-widgets-disconnected");
  model = new FakeModel(state());
  cleanup = explorer.render({ model, el });
  const knob = $<HTMLInputElement>("input.sw-knob-density");
  const saved = knob.value;
  knob.focus();
  knob.value = "-2";
  knob.dispatchEvent(new Event("input"));
  vi.advanceTimersByTime(200);
  await settled();
  expect(model.sent).toHaveLength(0);
  expect(knob.value).toBe(saved);
  expect($(".sw-error").textContent).toContain("needs a running Jupyter kernel");
  $<HTMLElement>('.sw-norms [data-feature="1"]').click();
  expect(model.sent).toHaveLength(0);
  el.classList.remove("jupyter-widgets-disconnected");
});
