/**
 * Long lists that render only what is visible (tens of thousands of SAE latents), and the search both
 * list views share (FeatureDashboard, FeatureLab) — the same rules as Python's `search_features`.
 */

/** Height of one list row in pixels (fixed: the list renders only the rows in view). */
export const ROW_HEIGHT = 20;
/** Rows rendered above and below the visible ones, so a fast scroll shows no gap. */
export const OVERSCAN = 8;

/** Positions `[start, end)` of the rows to render for a list of `n` rows scrolled to `scrollTop`. */
export function visibleRange(scrollTop: number, viewport: number, n: number, rowHeight = ROW_HEIGHT, overscan = OVERSCAN): [number, number] {
  const first = Math.max(0, Math.floor(scrollTop / rowHeight) - overscan);
  const last = Math.min(n, Math.ceil((scrollTop + viewport) / rowHeight) + overscan);
  return [first, Math.max(first, last)];
}

/**
 * The features of `order` matching `query`, as Python's `search_features`: `#123` is feature 123 only;
 * `123` is feature 123 first, then every feature whose name contains "123"; anything else, the names
 * containing it (case-insensitive). Name matches keep the list order; blank keeps all.
 */
export function filterLatents(order: ArrayLike<number>, names: readonly string[], query: string): number[] {
  const q = query.trim();
  const all = Array.from(order);
  if (!q) return all;
  const m = /^#?\s*(\d+)$/.exec(q);
  const exact = m && Number(m[1]) < names.length ? Number(m[1]) : -1;
  if (q.startsWith("#") && m) return exact >= 0 ? [exact] : [];
  const needle = q.toLowerCase();
  const hits = all.filter((f) => f !== exact && (names[f] ?? "").toLowerCase().includes(needle));
  return exact >= 0 ? [exact, ...hits] : hits;
}
