/** Minimal SVG helpers (text via textContent only). */

const NS = "http://www.w3.org/2000/svg";

/** Create an SVG element with attributes. */
export function s<K extends keyof SVGElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number> = {},
  text?: string,
): SVGElementTagNameMap[K] {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== undefined) el.textContent = text;
  return el;
}

/** An <svg> with a viewBox of `w`×`h` that scales to its container's width. */
export function svgRoot(w: number, h: number, label: string): SVGSVGElement {
  return s("svg", { viewBox: `0 0 ${w} ${h}`, width: "100%", role: "img", "aria-label": label });
}
