/** Test double shared by the views' vitest files (never bundled: only tests import it). */
import type { AnyModel } from "@anywidget/types";
import type { WireArray } from "../lib/codec";
import { Listeners } from "../lib/events";

/** The traits every superwidgets widget syncs (WidgetBase): no error, first revision, no request answered yet. */
export const WIDGET_BASE = { error: "", rev: 1, seq: 0, origin: "" };

/** One `model.send` call as the view made it. */
export interface Sent {
  content: Record<string, unknown>;
  callbacks: unknown;
  buffers: Array<ArrayBuffer | ArrayBufferView>;
}

/** Backbone-like model with the AnyModel surface the views use; records sends and saves, counts listeners. */
export class FakeModel<S extends object> extends Listeners implements AnyModel<S> {
  private attrs: S;
  readonly sent: Sent[] = [];
  saves = 0;
  widget_manager = {
    get_model: (): Promise<never> => Promise.reject(new Error("not available in tests")),
  };

  constructor(state: S) {
    super();
    this.attrs = { ...state };
  }

  get<K extends keyof S>(key: K): S[K] {
    return this.attrs[key];
  }

  set<K extends keyof S>(key: K, value: S[K]): void {
    this.update({ [key]: value } as unknown as Partial<S>);
  }

  /** Backbone set(hash): assign every attribute first, then fire change:<key> for each changed one, then change. */
  update(patch: Partial<S>): void {
    const changed = (Object.keys(patch) as Array<keyof S>).filter((k) => this.attrs[k] !== patch[k]);
    this.attrs = { ...this.attrs, ...patch };
    for (const k of changed) this.trigger(`change:${String(k)}`);
    if (changed.length) this.trigger("change");
  }

  save_changes(): void {
    this.saves += 1;
  }

  send(content: unknown, callbacks?: unknown, buffers?: ArrayBuffer[] | ArrayBufferView[]): void {
    this.sent.push({ content: content as Record<string, unknown>, callbacks, buffers: [...(buffers ?? [])] });
  }
}

/** `$` (one element, or throw) and `$$` (all elements) scoped to the element `root()` returns when called. */
export function queries(root: () => HTMLElement): {
  $: <E extends Element = HTMLElement>(sel: string) => E;
  $$: <E extends Element = HTMLElement>(sel: string) => E[];
} {
  return {
    $: <E extends Element = HTMLElement>(sel: string): E => {
      const found = root().querySelector<E>(sel);
      if (!found) throw new Error(`no ${sel}`);
      return found;
    },
    $$: <E extends Element = HTMLElement>(sel: string): E[] => Array.from(root().querySelectorAll<E>(sel)),
  };
}

/** A float32 wire array (`{view, dtype, shape}`); `offset` puts the view at a byte offset of its buffer, as comm buffers can be. */
export function wire(values: number[], shape: number[] = [values.length], offset = 0): WireArray {
  const view = new DataView(new ArrayBuffer(offset + values.length * 4), offset, values.length * 4);
  values.forEach((v, i) => view.setFloat32(i * 4, v, true));
  return { view, dtype: "float32", shape };
}

/** An int32 wire array. */
export function wireI32(values: number[], shape: number[] = [values.length]): WireArray {
  const view = new DataView(new ArrayBuffer(values.length * 4));
  values.forEach((v, i) => view.setInt32(i * 4, v, true));
  return { view, dtype: "int32", shape };
}
