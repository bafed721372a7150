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
});
