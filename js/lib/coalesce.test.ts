import { describe, expect, test } from "vitest";
import { Coalescer } from "./coalesce";

function setup(timeoutMs = 5000) {
  const sent: Array<{ value: number; seq: number }> = [];
  let t = 1000;
  const clock = {
    advance: (ms: number) => {
      t += ms;
    },
  };
  const co = new Coalescer<number>((value, seq) => sent.push({ value, seq }), timeoutMs, () => t);
  return { co, sent, clock };
}

/** Deterministic pseudo-random numbers in [0, 1) (mulberry32), so a failing case can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("Coalescer", () => {
  test("first push is sent immediately with seq 1", () => {
    const { co, sent } = setup();
    expect(co.lastSent).toBe(0);
    co.push(7);
    expect(sent).toEqual([{ value: 7, seq: 1 }]);
    expect(co.lastSent).toBe(1);
  });

  test("pushes while in flight are held; only the latest is sent on settle", () => {
    const { co, sent } = setup();
    co.push(1);
    for (let v = 2; v <= 10; v++) co.push(v);
    expect(sent).toHaveLength(1);
    expect(co.settle(1)).toBe(true);
    expect(sent).toEqual([
      { value: 1, seq: 1 },
      { value: 10, seq: 2 },
    ]);
    // nothing further is pending
    expect(co.settle(2)).toBe(true);
    expect(sent).toHaveLength(2);
  });

  test("settle returns false for a response older than the newest shown", () => {
    const { co, sent, clock } = setup(100);
    co.push(1); // seq 1
    clock.advance(200); // seq 1 never answered in time
    co.push(2); // seq 2
    expect(sent.map((s) => s.seq)).toEqual([1, 2]);
    expect(co.settle(2)).toBe(true);
    expect(co.settle(1)).toBe(false); // late answer to the older request
    expect(co.settle(2)).toBe(true); // same seq again is not older
  });

  test("busy: false idle, true in flight, true while a value waits, false once settled", () => {
    const { co } = setup();
    expect(co.busy).toBe(false);
    co.push(1);
    expect(co.busy).toBe(true);
    co.push(2);
    expect(co.busy).toBe(true);
    co.settle(1); // sends the pending value: still in flight
    expect(co.busy).toBe(true);
    co.settle(2);
    expect(co.busy).toBe(false);
  });

  test("a response for an older seq does not clear the in-flight request", () => {
    const { co, sent, clock } = setup(100);
    co.push(1);
    clock.advance(150);
    co.push(2); // seq 2 in flight
    co.push(3); // pending
    expect(co.settle(1)).toBe(true); // nothing newer shown yet, but seq 2 still in flight
    expect(co.busy).toBe(true);
    expect(sent).toHaveLength(2);
    co.settle(2);
    expect(sent[sent.length - 1]).toEqual({ value: 3, seq: 3 });
  });

  test("timeout lets a new value through when a response never comes", () => {
    const { co, sent, clock } = setup(5000);
    co.push(1);
    clock.advance(4999);
    co.push(2);
    expect(sent).toHaveLength(1); // still within the timeout: held
    clock.advance(1);
    co.push(3);
    expect(sent).toEqual([
      { value: 1, seq: 1 },
      { value: 3, seq: 2 },
    ]);
  });

  test("a value sent on timeout supersedes the pending one: an older value is never sent after it", () => {
    let t = 0;
    const sent: number[] = [];
    const co = new Coalescer<number>((value) => sent.push(value), 5000, () => t);
    co.push(1); // seq 1 in flight (the kernel is slow)
    t = 1000;
    co.push(2); // held: seq 1 is only 1 s old
    t = 6000;
    co.push(3); // seq 1 is past the timeout: 3 goes out now as seq 2, and 2 is dropped
    co.settle(1); // the slow answer arrives; seq 2 is still in flight
    co.settle(2);
    expect(sent).toEqual([1, 3]);
    expect(co.busy).toBe(false);
  });

  test("property: once everything is answered, the last value sent and shown is the last value pushed", () => {
    for (let seed = 1; seed <= 500; seed++) {
      const random = rng(seed);
      let t = 0;
      const sent: Array<{ value: number; seq: number }> = [];
      const co = new Coalescer<number>((value, seq) => sent.push({ value, seq }), 5000, () => t);
      const answered = new Set<number>();
      let pushed = 0;
      let shown = 0; // value of the latest response the view displayed
      const answer = (seq: number): void => {
        answered.add(seq);
        if (co.settle(seq)) shown = sent.find((s) => s.seq === seq)!.value;
      };
      const steps = 1 + Math.floor(random() * 30);
      for (let k = 0; k < steps; k++) {
        const r = random();
        if (r < 0.45) {
          co.push(++pushed); // pushed values increase, so "older" means smaller
        } else if (r < 0.75) {
          t += Math.floor(random() * 7000); // sometimes past the 5 s timeout
        } else {
          // the kernel answers requests in the order they were sent
          const next = sent.find((s) => !answered.has(s.seq));
          if (next !== undefined) answer(next.seq);
        }
      }
      if (pushed === 0) co.push(++pushed);
      // let every request be answered (answers may send the pending value)
      for (let next = sent.find((s) => !answered.has(s.seq)); next; next = sent.find((s) => !answered.has(s.seq))) {
        answer(next.seq);
      }
      const values = sent.map((s) => s.value);
      const context = `seed ${seed}: sent ${JSON.stringify(values)}, pushed 1..${pushed}`;
      expect(values[values.length - 1], context).toBe(pushed);
      expect(shown, context).toBe(pushed);
      expect(co.busy, context).toBe(false);
      for (let i = 1; i < values.length; i++) {
        expect(values[i], context).toBeGreaterThan(values[i - 1]); // never an older value after a newer one
      }
    }
  });
});
