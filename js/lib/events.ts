/** Backbone-style event listeners, the part of a widget model's surface that views subscribe with. */

// same shape as anywidget's EventHandler
export type Handler = (...args: any[]) => void;

/** `on` / `off` / `trigger` with Backbone's semantics (off with no callback removes all for that event). */
export class Listeners {
  private handlers = new Map<string, Handler[]>();

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

  /** How many listeners are attached (tests check a view's cleanup removes them all). */
  listenerCount(): number {
    let n = 0;
    for (const list of this.handlers.values()) n += list.length;
    return n;
  }
}
