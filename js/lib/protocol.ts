/**
 * The per-view side of the widget protocol (docs/widgets.md §Wire protocol): a view id for the
 * requests a view sends, listeners that cleanup removes, and one update callback that sees a
 * Python update whole, whatever order and batching the frontend applies its keys in.
 *
 * Why deferred: Python writes an update's traits in one message (rev, seq, origin and the
 * results), but frontends apply it differently. Jupyter's Backbone models set every key, then fire
 * `change:<key>` for each; marimo sets one key, fires its `change:<key>`, then the next, so a
 * handler on `change:rev` can read a stale `seq`, `origin` or `edited` (the view went one update
 * behind). Here every `change:<key>` of the view's keys only marks the key changed and schedules
 * one callback in a microtask, which runs after the frontend has applied the whole message. And
 * as the callback runs after any change of any key it reads (not only `rev`), a frontend that
 * split one update over several tasks still ends with the view showing the final state.
 */
import type { AnyModel } from "@anywidget/types";
import type { Disposer } from "./dom";

/** Every key of the state `S`, checked by the compiler (a missing or unknown key is a type error). */
export type KeyTable<S> = { [K in keyof S]-?: true };

/** The part of a `Coalescer` that an answer settles. */
export interface Settles {
  settle(seq: number): boolean;
  readonly busy: boolean;
}

/** What a control shows, in the view's error area, on a page with no kernel behind its widgets. */
export const NEEDS_KERNEL =
  "No Jupyter kernel is connected to this page: that needs a running Jupyter kernel (open the notebook in Jupyter and run it). The saved state is shown.";

export interface Connection {
  /** This view's id: the `origin` of its coalesced requests, and of Python's answers to them. */
  readonly viewId: string;
  /**
   * True (and the view shows `NEEDS_KERNEL` in its error area, its controls back at the saved state)
   * when no kernel can answer: ipywidgets marks the element of a view whose model was created without
   * a comm `jupyter-widgets-disconnected`, as its HTML manager does in an nbconvert HTML export. Check
   * before sending; nothing is sent then. (A live notebook whose kernel was shut down keeps its comms
   * and is not marked: there a request goes unanswered.)
   */
  offline(): boolean;
  /** `model.send`, unless `offline()`. */
  send(content: Record<string, unknown>, buffers?: ArrayBuffer[]): void;
  /** `model.on` that the view's cleanup undoes. */
  on(event: string, fn: (...args: any[]) => void): void;
  /**
   * Where the last update leaves this view's requests: `stale` (an answer to an older request of
   * this view than one already shown: show nothing), `busy` (a newer request is still in flight or
   * waiting: show the results, keep the local controls), `idle` (take the controls from the model).
   * Safe to call again for the same update.
   */
  answer(co: Settles): "stale" | "busy" | "idle";
}

/**
 * Wire a view to its model.
 *
 * @param model the widget model
 * @param el the element the view renders into
 * @param d the view's disposer (listeners and a pending update are dropped on cleanup)
 * @param keys every synced key the view reads
 * @param update called once per applied update, after every key of it is in place, with the keys that changed
 */
export function connect<S extends object>(
  model: AnyModel<S>,
  el: HTMLElement,
  d: Disposer,
  keys: KeyTable<S>,
  update: (changed: ReadonlySet<keyof S & string>) => void,
): Connection {
  const viewId = `v${Math.random().toString(36).slice(2, 10)}`;
  const on = (event: string, fn: (...args: any[]) => void): void => {
    model.on(event, fn);
    d.add(() => model.off(event, fn));
  };
  let changed = new Set<keyof S & string>();
  let scheduled = false;
  let live = true;
  d.add(() => {
    live = false;
  });
  const flush = (): void => {
    scheduled = false;
    if (!live) return;
    const batch = changed;
    changed = new Set();
    update(batch);
  };
  const mark = (key: keyof S & string): void => {
    changed.add(key);
    if (scheduled) return;
    scheduled = true;
    // a promise job, not a timer: it runs before the browser paints, and fake timers leave it alone
    void Promise.resolve().then(flush);
  };
  const list = Object.keys(keys) as Array<keyof S & string>;
  for (const key of list) on(`change:${key}`, () => mark(key));
  const get = (k: string): unknown => model.get(k as keyof S);
  const offline = (): boolean => {
    if (el.closest(".jupyter-widgets-disconnected") === null) return false;
    // a local write (no comm to sync it): the view redraws from the saved state with the message
    model.set("error" as keyof S, NEEDS_KERNEL as S[keyof S]);
    if ("error" in keys) mark("error" as keyof S & string);
    return true;
  };
  return {
    viewId,
    on,
    offline,
    send(content: Record<string, unknown>, buffers?: ArrayBuffer[]): void {
      if (!offline()) model.send(content, undefined, buffers);
    },
    answer(co: Settles): "stale" | "busy" | "idle" {
      if (get("origin") === viewId && !co.settle(get("seq") as number)) return "stale";
      return co.busy ? "busy" : "idle";
    },
  };
}
