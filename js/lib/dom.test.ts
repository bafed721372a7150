import { describe, expect, test, vi } from "vitest";
import { interpolateViridis } from "d3-scale-chromatic";
import { control, Disposer, h, rgbOf, signed } from "./dom";

describe("h", () => {
  test("sets text with textContent, never parsing HTML", () => {
    const evil = "<img src=x onerror=alert(1)>";
    const el = h("div", { class: "x" }, evil);
    expect(el.textContent).toBe(evil);
    expect(el.querySelector("img")).toBeNull();
    expect(el.children).toHaveLength(0);
  });

  test("attributes: strings/numbers stringified, true is empty, false omitted; children appended", () => {
    const child = h("span", {}, "c");
    const el = h("input", { type: "range", min: -3, disabled: true, hidden: false }, undefined, [child]);
    expect(el.getAttribute("type")).toBe("range");
    expect(el.getAttribute("min")).toBe("-3");
    expect(el.getAttribute("disabled")).toBe("");
    expect(el.hasAttribute("hidden")).toBe(false);
    expect(el.firstChild).toBe(child);
  });
});

describe("control", () => {
  test("sets data-lm-suppress-shortcuts=true and returns the element", () => {
    const b = h("button");
    expect(control(b)).toBe(b);
    expect(b.getAttribute("data-lm-suppress-shortcuts")).toBe("true");
  });
});

describe("Disposer", () => {
  test("dispose removes listeners: the event no longer fires", () => {
    const d = new Disposer();
    const b = h("button");
    const fn = vi.fn();
    d.listen(b, "click", fn);
    b.dispatchEvent(new Event("click"));
    expect(fn).toHaveBeenCalledTimes(1);
    d.dispose();
    b.dispatchEvent(new Event("click"));
    expect(fn).toHaveBeenCalledTimes(1);
  });

  test("dispose runs each cleanup once, newest first, even if one throws", () => {
    const d = new Disposer();
    const order: string[] = [];
    d.add(() => order.push("a"));
    d.add(() => {
      order.push("b");
      throw new Error("boom");
    });
    d.add(() => order.push("c"));
    expect(d.size).toBe(3);
    d.dispose();
    expect(order).toEqual(["c", "b", "a"]);
    expect(d.size).toBe(0);
    d.dispose();
    expect(order).toEqual(["c", "b", "a"]);
  });
});

test("signed", () => {
  expect(signed(0.5)).toBe("+0.500");
  expect(signed(-0.5, 1)).toBe("-0.5");
  expect(signed(0, 2)).toBe(" 0.00");
});

describe("rgbOf", () => {
  test("reads the hex colours d3's interpolators return, and rgb()", () => {
    expect(rgbOf("#440154")).toEqual([68, 1, 84]);
    expect(rgbOf("rgb(253, 231, 37)")).toEqual([253, 231, 37]);
    expect(rgbOf(interpolateViridis(1))).toEqual([253, 231, 37]);
    expect(rgbOf("teal")).toEqual([0, 0, 0]);
  });
});
