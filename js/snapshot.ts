/**
 * Loader of a static HTML snapshot (`widget.to_html()`): a read-only model standing in for the
 * kernel's, fed from JSON in the page, and the widget's own view rendered against it.
 *
 * Messages the view sends are answered from the snapshot's table of precomputed replies (the
 * state a widget's Python side writes in answer, e.g. a dashboard selecting a latent); anything
 * else gets the "needs a running kernel" error in the widget's own error area, and the note above
 * the view is highlighted. Inlined into the page as a module script; it boots itself only when
 * the page has a snapshot root.
 */
import type { AnyModel } from "@anywidget/types";
import { Listeners } from "./lib/events";

/** One precomputed answer: messages whose fields equal `match` get `patch` written into the state. */
export interface Reply {
  match: Record<string, unknown>;
  patch: Record<string, unknown>;
}

type State = Record<string, unknown>;

export const NO_KERNEL = "This is a static snapshot: that needs a running Jupyter kernel (open the notebook to use it).";

/** JSON → view state: `{"__sw_b64__": "..."}` (an array's bytes) becomes a DataView, like a binary buffer. */
export function revive(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(revive);
  if (v !== null && typeof v === "object") {
    const b64 = (v as { __sw_b64__?: unknown }).__sw_b64__;
    if (typeof b64 === "string") {
      const bin = atob(b64);
      const bytes = new Uint8Array(bin.length);
      for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
      return new DataView(bytes.buffer);
    }
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, revive(x)]));
  }
  return v;
}

/** Equal as JSON values: numbers within float rounding, arrays element by element. */
function same(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a === "number" && typeof b === "number") return Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b));
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => same(x, b[i]));
  return false;
}

/** Base64 of a binary buffer's bytes (a reply matches a message's buffers by these). */
export function base64(buf: ArrayBuffer | ArrayBufferView): string {
  const bytes = ArrayBuffer.isView(buf) ? new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength) : new Uint8Array(buf);
  let bin = "";
  for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
  return btoa(bin);
}

/** The model of a snapshot: the saved state, local listeners, replies instead of a kernel. */
export class SnapshotModel extends Listeners implements AnyModel<State> {
  readonly widget_manager = {
    get_model: (): Promise<never> => Promise.reject(new Error("a static snapshot has no kernel")),
  };

  /**
   * @param state the saved state (revived)
   * @param replies precomputed answers to view messages
   * @param needsKernel called when the view asks for something only a kernel can answer
   */
  constructor(
    private state: State,
    private readonly replies: Reply[] = [],
    private readonly needsKernel: () => void = () => undefined,
  ) {
    super();
  }

  get<K extends string>(key: K): any {
    return this.state[key];
  }

  set<K extends string>(key: K, value: unknown): void {
    this.state[key] = value;
    this.trigger(`change:${key}`);
    this.trigger("change");
  }

  /** A view writing a trait expects Python to act on it: nothing can here. */
  save_changes(): void {
    this.needsKernel();
  }

  /**
   * Answer from the replies (asynchronously, like a kernel), or with the "needs a kernel" error.
   * A reply's `match` may name `__buffers__`: the base64 of the binary buffers sent with the message.
   */
  send(content: unknown, _callbacks?: unknown, buffers?: ArrayBuffer[] | ArrayBufferView[]): void {
    const msg: Record<string, unknown> = { ...((content ?? {}) as Record<string, unknown>) };
    if (buffers?.length) msg.__buffers__ = [...buffers].map(base64);
    const hit = this.replies.find((r) => Object.entries(r.match).every(([k, v]) => same(msg[k], v)));
    let patch: State;
    if (hit) {
      patch = { ...hit.patch };
      if ("error" in this.state) patch.error = "";
    } else {
      this.needsKernel();
      if (!("error" in this.state)) return;
      patch = { error: NO_KERNEL };
    }
    if ("seq" in this.state && typeof msg.seq === "number") patch.seq = msg.seq;
    if ("origin" in this.state && typeof msg.origin === "string") patch.origin = msg.origin;
    if ("rev" in this.state) patch.rev = (this.state.rev as number) + 1;
    // answered later, like a kernel: the view may still be recording what it sent. One key at a time,
    // in the reply's own order, as marimo applies an update: views take an update whole whatever the order.
    setTimeout(() => {
      for (const [k, v] of Object.entries(patch)) {
        this.state[k] = v;
        this.trigger(`change:${k}`);
      }
      this.trigger("change");
    }, 0);
  }
}

/** Read the page's state, replies and view bundle; render the view. */
export async function boot(doc: Document): Promise<void> {
  const text = (id: string): string => doc.getElementById(id)?.textContent ?? "";
  const note = doc.getElementById("sw-snapshot-note");
  const needsKernel = (): void => {
    if (!note) return;
    note.classList.add("sw-snapshot-touched");
    note.dataset.touched = String(Number(note.dataset.touched ?? 0) + 1);
  };
  const state = revive(JSON.parse(text("sw-snapshot-state"))) as State;
  const replies = revive(JSON.parse(text("sw-snapshot-replies") || "[]")) as Reply[];
  const view = await import(/* @vite-ignore */ `data:text/javascript;base64,${text("sw-snapshot-esm")}`);
  const el = doc.getElementById("sw-snapshot-root") as HTMLElement;
  view.default.render({ model: new SnapshotModel(state, replies, needsKernel), el });
  el.dataset.rendered = "true";
}

if (typeof document !== "undefined" && document.getElementById("sw-snapshot-root")?.dataset.boot === "auto") {
  void boot(document);
}
