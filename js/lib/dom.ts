/** Small DOM helpers: text-only element creation, focusable controls, listener cleanup. */

type Attrs = Record<string, string | number | boolean>;

/** Create an element; `text` is set with textContent (never parsed as HTML). */
export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  text?: string,
  children: Node[] = [],
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === false) continue;
    el.setAttribute(k, v === true ? "" : String(v));
  }
  if (text !== undefined) el.textContent = text;
  for (const c of children) el.appendChild(c);
  return el;
}

/** Mark a focusable control so JupyterLab's notebook shortcuts leave its keys alone. */
export function control<E extends HTMLElement>(el: E): E {
  el.setAttribute("data-lm-suppress-shortcuts", "true");
  return el;
}

/** Collects listeners and timers so a view's cleanup removes every one of them. */
export class Disposer {
  private fns: Array<() => void> = [];

  /** addEventListener that is undone by dispose(). */
  listen<K extends keyof HTMLElementEventMap>(
    target: HTMLElement | Document | Window,
    type: K,
    fn: (ev: HTMLElementEventMap[K]) => void,
  ): void {
    target.addEventListener(type, fn as EventListener);
    this.fns.push(() => target.removeEventListener(type, fn as EventListener));
  }

  /** Register any cleanup function. */
  add(fn: () => void): void {
    this.fns.push(fn);
  }

  /** Number of registered cleanups (for tests). */
  get size(): number {
    return this.fns.length;
  }

  /** Run every cleanup once, newest first. */
  dispose(): void {
    while (this.fns.length) {
      const fn = this.fns.pop();
      try {
        fn?.();
      } catch {
        /* a failing cleanup must not stop the others */
      }
    }
  }
}

/** Format a number with a sign for deltas. */
export function signed(x: number, digits = 3): string {
  const s = x.toFixed(digits);
  return x > 0 ? `+${s}` : x === 0 ? ` ${s}` : s;
}

/**
 * Rows of a "correlation with each true factor" bar list, strongest |r| first: name, a bar growing
 * left (negative) or right (positive) from the middle, and the signed value. Styles: `.sw-gt-*`.
 */
export function factorRows(names: string[], r: ArrayLike<number>): HTMLElement[] {
  const order = Array.from({ length: r.length }, (_, k) => k).sort((a, b) => Math.abs(r[b]) - Math.abs(r[a]));
  return order.map((k) =>
    h("div", { class: "sw-gt-row", role: "listitem", "data-factor": k, "data-r": r[k] }, undefined, [
      h("span", { class: "sw-gt-name", title: names[k] }, names[k]),
      h("span", { class: "sw-gt-track" }, undefined, [
        h("span", {
          class: `sw-gt-bar ${r[k] < 0 ? "sw-neg" : ""}`,
          style: `width:${(Math.abs(r[k]) * 50).toFixed(1)}%;${r[k] < 0 ? "right:50%" : "left:50%"}`,
        }),
      ]),
      h("span", { class: "sw-gt-value" }, signed(r[k], 2)),
    ]),
  );
}

/** `[r, g, b]` (0–255) of a CSS colour written as `#rrggbb` or `rgb(r, g, b)` (what d3's interpolators return). */
export function rgbOf(css: string): [number, number, number] {
  const hex = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(css.trim());
  if (hex) return [parseInt(hex[1], 16), parseInt(hex[2], 16), parseInt(hex[3], 16)];
  const m = /rgb\((\d+), ?(\d+), ?(\d+)\)/.exec(css);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : [0, 0, 0];
}

/**
 * Tokens as text chips (`.sw-tokens` of `.sw-token`), each shaded by its value: orange for positive,
 * blue for negative, opacity |value| / `peak`; `data-act` and the tooltip carry the value.
 */
export function tokenStrip(tokens: string[], values: ArrayLike<number> | null, peak: number, label = "tokens"): HTMLElement {
  return h(
    "div",
    { class: "sw-tokens", role: "list", "aria-label": label },
    undefined,
    tokens.map((t, i) => {
      const chip = h("span", { class: "sw-token", role: "listitem" }, t);
      if (values) {
        const a = values[i];
        const alpha = (Math.min(1, Math.abs(a) / Math.max(peak, 1e-9)) * 0.85).toFixed(3);
        chip.dataset.act = String(a);
        chip.title = `${t}: ${a.toFixed(3)}`;
        chip.style.background = a >= 0 ? `rgba(230, 126, 0, ${alpha})` : `rgba(25, 118, 210, ${alpha})`;
      }
      return chip;
    }),
  );
}
