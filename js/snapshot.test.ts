import { afterEach, beforeEach, describe, expect, test, vi } from "vitest";
import lab from "./lab";
import { base64, NO_KERNEL, revive, SnapshotModel, type Reply } from "./snapshot";
import { permutations, queries, settled, wire } from "./testing/fake-model";
import { labState } from "./testing/lab-state";

beforeEach(() => vi.useFakeTimers());
afterEach(() => vi.useRealTimers());

test("revive turns base64 array bytes into DataViews, leaves the rest alone", () => {
  const bytes = new Uint8Array(new Float32Array([1.5, -2]).buffer);
  const b64 = btoa(String.fromCharCode(...bytes));
  const v = revive({ a: { view: { __sw_b64__: b64 }, dtype: "float32", shape: [2] }, names: ["x", "<b>"], n: 3, z: null }) as any;
  expect(v.a.view).toBeInstanceOf(DataView);
  expect([v.a.view.getFloat32(0, true), v.a.view.getFloat32(4, true)]).toEqual([1.5, -2]);
  expect(v.names).toEqual(["x", "<b>"]);
  expect(v.n).toBe(3);
  expect(v.z).toBeNull();
});

test("a matching message is answered later, with seq, origin, a new rev and the error cleared", () => {
  const replies: Reply[] = [{ match: { type: "ablate", feature: 2 }, patch: { ablated: 2, interference: "I2" } }];
  const kernel = vi.fn();
  const m = new SnapshotModel({ ablated: -1, interference: "I0", error: "old", rev: 4, seq: 0, origin: "" }, replies, kernel);
  const seen: string[] = [];
  for (const k of ["ablated", "interference", "error", "rev", "seq"]) m.on(`change:${k}`, () => seen.push(`${k}=${String(m.get(k))}`));
  m.send({ type: "ablate", seq: 7, origin: "v1", feature: 2 });
  expect(m.get("ablated")).toBe(-1); // not synchronously: the view is still recording its request
  vi.runAllTimers();
  expect(m.get("ablated")).toBe(2);
  expect(m.get("origin")).toBe("v1");
  expect(seen[seen.length - 1]).toBe("rev=5"); // views re-render on rev, so it comes last
  expect(seen).toContain("error=");
  expect(seen).toContain("seq=7");
  expect(kernel).not.toHaveBeenCalled();
});

test("numbers match within float rounding; other messages get the needs-a-kernel error and keep the state", () => {
  const replies: Reply[] = [{ match: { type: "request", steer: 0.1 + 0.2 }, patch: { selected: 5 } }];
  const kernel = vi.fn();
  const m = new SnapshotModel({ selected: 1, error: "", rev: 0 }, replies, kernel);
  m.send({ type: "request", steer: 0.3 });
  vi.runAllTimers();
  expect(m.get("selected")).toBe(5);
  m.send({ type: "request", steer: 0.5 });
  vi.runAllTimers();
  expect(m.get("selected")).toBe(5);
  expect(m.get("error")).toBe(NO_KERNEL);
  expect(kernel).toHaveBeenCalledTimes(1);
  m.save_changes();
  expect(kernel).toHaveBeenCalledTimes(2);
});

test("listeners come off with off(), as a view's cleanup expects", () => {
  const m = new SnapshotModel({ a: 1 });
  const f = vi.fn();
  m.on("change:a", f);
  m.set("a", 2);
  m.off("change:a", f);
  m.set("a", 3);
  expect(f).toHaveBeenCalledTimes(1);
});

test("a reply can match the message's binary buffers and list fields, as FeatureLab's requests carry them", () => {
  const steer = new Float32Array([0, 1.5, 0]);
  const replies: Reply[] = [
    { match: { type: "request", ablated: [1, 3], __buffers__: [base64(steer)] }, patch: { edited: "E13" } },
  ];
  const m = new SnapshotModel({ edited: "E", error: "", rev: 0 }, replies);
  m.send({ type: "request", ablated: [1, 3] }, undefined, [steer.buffer]);
  vi.runAllTimers();
  expect(m.get("edited")).toBe("E13");
  m.send({ type: "request", ablated: [1, 3] }, undefined, [new Float32Array([0, 2, 0]).buffer]); // another steer
  vi.runAllTimers();
  expect(m.get("error")).toBe(NO_KERNEL);
  m.send({ type: "request", ablated: [1] }, undefined, [steer.buffer]); // another set of switches
  vi.runAllTimers();
  expect(m.get("error")).toBe(NO_KERNEL);
  expect(base64(new Uint8Array([0, 1, 2, 3, 4]).subarray(1, 3))).toBe(btoa("\x01\x02"));
});

describe("a view rendered against the snapshot, its replies applied one key at a time in every order", () => {
  test("shows the reply, settles, and a message the snapshot cannot answer keeps that state with the error", async () => {
    const keys = ["edited", "steer", "rev", "seq", "origin"] as const;
    const steer = new Float32Array([0, 2, 0]);
    for (const order of permutations(keys)) {
      const values: Record<string, unknown> = { edited: wire([0.25, 0.75]), steer: wire([0, 2, 0]), rev: 0, seq: 0, origin: "" };
      const patch = Object.fromEntries(order.map((k) => [k, values[k]])); // rev, seq, origin: filled in by the loader, in place
      const replies: Reply[] = [{ match: { type: "request", ablated: [], __buffers__: [base64(steer)] }, patch }];
      const state = labState();
      const el = document.createElement("div");
      document.body.appendChild(el);
      const cleanup = lab.render({ model: new SnapshotModel(state as unknown as Record<string, unknown>, replies), el });
      const { $, $$ } = queries(() => el);
      const slide = (i: number, v: number): void => {
        const s = $$<HTMLInputElement>(".sw-slider")[i];
        s.value = String(v);
        s.dispatchEvent(new Event("input", { bubbles: true }));
      };
      const edited = (): number[] => $$(".sw-pred").map((r) => Number(r.getAttribute("data-edited")));
      slide(1, 2);
      vi.runAllTimers();
      await settled();
      expect(edited()).toEqual([0.25, 0.75]);
      expect($(".sw-status").textContent).toBe("");
      expect($(".sw-lab").classList.contains("sw-busy")).toBe(false);
      expect($$<HTMLInputElement>(".sw-slider").map((s) => s.value)).toEqual(["0", "2", "0"]);
      slide(2, 1); // not in the snapshot
      vi.runAllTimers();
      await settled();
      expect($(".sw-error").textContent).toBe(NO_KERNEL);
      expect(edited()).toEqual([0.25, 0.75]);
      expect($$<HTMLInputElement>(".sw-slider").map((s) => s.value)).toEqual(["0", "2", "0"]);
      expect($(".sw-lab").classList.contains("sw-busy")).toBe(false);
      cleanup();
      el.remove();
    }
  }, 60_000);
});
