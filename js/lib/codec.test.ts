import { describe, expect, test } from "vitest";
import { decodeArray, encodeFloat32, type WireArray } from "./codec";

/** Write `values` little-endian (the wire order, and every supported host's) at `offset` of a fresh buffer. */
function packed(values: number[], dtype: "float32" | "int32", offset: number): DataView {
  const buf = new ArrayBuffer(offset + values.length * 4 + 3);
  const dv = new DataView(buf);
  values.forEach((v, i) => {
    if (dtype === "float32") dv.setFloat32(offset + i * 4, v, true);
    else dv.setInt32(offset + i * 4, v, true);
  });
  return new DataView(buf, offset, values.length * 4);
}

describe("decodeArray", () => {
  const floats = [1.5, -2.25, 0, 3.1415927, -1e-3];
  const ints = [0, 1, -1, 2147483647, -2147483648, 42];

  test("float32, aligned byteOffset: correct values, no copy", () => {
    const view = packed(floats, "float32", 8);
    const out = decodeArray({ view, dtype: "float32", shape: [floats.length] });
    expect(out).toBeInstanceOf(Float32Array);
    expect(Array.from(out!)).toEqual(floats.map(Math.fround));
    expect(out!.buffer).toBe(view.buffer);
    expect(out!.byteOffset).toBe(8);
  });

  test("float32, misaligned byteOffset: still decodes correctly", () => {
    for (const offset of [1, 2, 3, 5]) {
      const view = packed(floats, "float32", offset);
      const out = decodeArray({ view, dtype: "float32", shape: [floats.length] });
      expect(out).toBeInstanceOf(Float32Array);
      expect(out!.length).toBe(floats.length);
      expect(Array.from(out!)).toEqual(floats.map(Math.fround));
    }
  });

  test("int32, aligned byteOffset", () => {
    const view = packed(ints, "int32", 4);
    const out = decodeArray({ view, dtype: "int32", shape: [ints.length] });
    expect(out).toBeInstanceOf(Int32Array);
    expect(Array.from(out!)).toEqual(ints);
    expect(out!.buffer).toBe(view.buffer);
  });

  test("int32, misaligned byteOffset: still decodes correctly", () => {
    for (const offset of [1, 3, 7]) {
      const view = packed(ints, "int32", offset);
      const out = decodeArray({ view, dtype: "int32", shape: [ints.length] });
      expect(out).toBeInstanceOf(Int32Array);
      expect(Array.from(out!)).toEqual(ints);
    }
  });

  test("accepts a bare ArrayBuffer and a misaligned Uint8Array", () => {
    const src = Float32Array.from([1, 2, 3]);
    expect(Array.from(decodeArray({ view: src.buffer, dtype: "float32", shape: [3] })!)).toEqual([1, 2, 3]);
    const bytes = new Uint8Array(13);
    bytes.set(new Uint8Array(src.buffer), 1);
    const out = decodeArray({ view: bytes.subarray(1), dtype: "float32", shape: [3] });
    expect(Array.from(out!)).toEqual([1, 2, 3]);
  });

  test("null and undefined decode to null", () => {
    expect(decodeArray(null)).toBeNull();
    expect(decodeArray(undefined)).toBeNull();
  });

  test("unknown dtype throws", () => {
    const view = new DataView(new ArrayBuffer(8));
    const bad = { view, dtype: "float64", shape: [1] } as unknown as WireArray;
    expect(() => decodeArray(bad)).toThrow(/unsupported dtype float64/);
  });

  test("byte length not a multiple of 4 throws", () => {
    for (const n of [1, 2, 3, 6, 7]) {
      const view = new DataView(new ArrayBuffer(n));
      expect(() => decodeArray({ view, dtype: "float32", shape: [1] })).toThrow(/not a whole number/);
      expect(() => decodeArray({ view, dtype: "int32", shape: [1] })).toThrow(/not a whole number/);
    }
  });
});

describe("encodeFloat32", () => {
  test("round trips through decodeArray", () => {
    const values = [0.1, -7.5, 1e6, 0, -0.0001];
    const { meta, buffer } = encodeFloat32(values);
    expect(meta).toEqual({ dtype: "float32", shape: [values.length] });
    expect(buffer.byteLength).toBe(values.length * 4);
    const out = decodeArray({ view: new DataView(buffer), dtype: meta.dtype, shape: meta.shape });
    expect(out).toBeInstanceOf(Float32Array);
    expect(Array.from(out!)).toEqual(values.map(Math.fround));
  });

  test("copies its input", () => {
    const src = Float32Array.from([1, 2]);
    const { buffer } = encodeFloat32(src);
    expect(buffer).not.toBe(src.buffer);
    src[0] = 9;
    expect(new Float32Array(buffer)[0]).toBe(1);
  });
});
