/** Test double shared by the views' vitest files (never bundled: only tests import it). */
import type { AnyModel } from "@anywidget/types";

// same shape as anywidget's EventHandler
type Handler = (...args: any[]) => void;

/** One `model.send` call as the view made it. */
export interface Sent {
  content: Record<string, unknown>;
  callbacks: unknown;
  buffers: Array<ArrayBuffer | ArrayBufferView>;
}

/** Backbone-like model with the AnyModel surface the views use; records sends and saves, counts listeners. */
export class FakeModel<S extends object> implements AnyModel<S> {
  private attrs: S;
  private handlers = new Map<string, Handler[]>();
  readonly sent: Sent[] = [];
  saves = 0;
  widget_manager = {
    get_model: (): Promise<never> => Promise.reject(new Error("not available in tests")),
  };

  constructor(state: S) {
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

  on(eventName: string, callback: Handler): void {
    const list = this.handlers.get(eventName) ?? [];
    list.push(callback);
    this.handlers.set(eventName, list);
  }

  off(eventName?: string | null, callback?: Handler | null): void {
    for (const [name, list] of this.handlers) {
      if (eventName != null && name !== eventName) continue;
      const kept = callback == null ? [] : list.filter((f) => f !== callback);
      if (kept.length) this.handlers.set(name, kept);
      else this.handlers.delete(name);
    }
  }

  trigger(eventName: string, ...args: unknown[]): void {
    for (const f of [...(this.handlers.get(eventName) ?? [])]) f(...args);
  }

  listenerCount(): number {
    let n = 0;
    for (const list of this.handlers.values()) n += list.length;
    return n;
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
