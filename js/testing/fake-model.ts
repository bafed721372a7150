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

  /**
   * Backbone set(hash), as Jupyter applies a kernel update: assign every attribute first, then fire
   * change:<key> for each changed one, then change. Resolves once the views have handled it (they
   * handle an update in a promise job: lib/protocol.ts).
   */
  update(patch: Partial<S>): Promise<void> {
    const changed = (Object.keys(patch) as Array<keyof S>).filter((k) => this.attrs[k] !== patch[k]);
    this.attrs = { ...this.attrs, ...patch };
    for (const k of changed) this.trigger(`change:${String(k)}`);
    if (changed.length) this.trigger("change");
    return settled();
  }

  /**
   * marimo's way (`updateAndEmitDiffs`): in `order`, set one key and fire its change:<key>, then the
   * next. With `split`, each key arrives in a task of its own (a frontend that splits an update).
   */
  async updateOneByOne(patch: Partial<S>, order: Array<keyof S> = Object.keys(patch) as Array<keyof S>, split = false): Promise<void> {
    for (const k of order) {
      if (this.attrs[k] === patch[k]) continue;
      this.attrs = { ...this.attrs, [k]: patch[k] };
      this.trigger(`change:${String(k)}`);
      if (split) await settled();
    }
    this.trigger("change");
    return settled();
  }

  save_changes(): void {
    this.saves += 1;
  }

  send(content: unknown, callbacks?: unknown, buffers?: ArrayBuffer[] | ArrayBufferView[]): void {
    this.sent.push({ content: content as Record<string, unknown>, callbacks, buffers: [...(buffers ?? [])] });
  }
}

/** Resolves after the promise jobs queued so far (and those they queue) have run. */
export async function settled(): Promise<void> {
  for (let i = 0; i < 3; i++) await Promise.resolve();
}

/** Every order of `xs` (n! of them). */
export function permutations<T>(xs: readonly T[]): T[][] {
  if (xs.length <= 1) return [[...xs]];
  return xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((rest) => [x, ...rest]));
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
