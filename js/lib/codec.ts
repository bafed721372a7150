/** Binary array codec: arrays cross the wire as `{view, dtype, shape}` with the data in a buffer. */

export interface WireArray {
  view: DataView | ArrayBuffer | Uint8Array;
  dtype: "float32" | "int32";
  shape: number[];
}

export type NumArray = Float32Array | Int32Array;

/** Decode a wire array without copying when the buffer is aligned (copies once otherwise). */
export function decodeArray(value: WireArray | null | undefined): NumArray | null {
  if (value === null || value === undefined) return null;
  const Ctor = value.dtype === "int32" ? Int32Array : value.dtype === "float32" ? Float32Array : null;
  if (Ctor === null) throw new Error(`unsupported dtype ${String(value.dtype)}; expected float32 or int32`);
  const v = value.view;
  const buffer = v instanceof ArrayBuffer ? v : v.buffer;
  const byteOffset = v instanceof ArrayBuffer ? 0 : v.byteOffset;
  const byteLength = v instanceof ArrayBuffer ? v.byteLength : v.byteLength;
  if (byteLength % 4 !== 0) throw new Error(`buffer of ${byteLength} bytes is not a whole number of ${value.dtype}`);
  if (byteOffset % 4 === 0) return new Ctor(buffer as ArrayBuffer, byteOffset, byteLength / 4);
  return new Ctor((buffer as ArrayBuffer).slice(byteOffset, byteOffset + byteLength));
}

/** Encode a Float32Array for a custom message: returns the content part and the buffer to send. */
export function encodeFloat32(data: ArrayLike<number>): { meta: { dtype: "float32"; shape: number[] }; buffer: ArrayBuffer } {
  const arr = Float32Array.from(data);
  return { meta: { dtype: "float32", shape: [arr.length] }, buffer: arr.buffer };
}
