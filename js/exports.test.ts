import { expect, test } from "vitest";
import * as align from "./align";
import * as dashboard from "./dashboard";
import * as explorer from "./explorer";
import * as lab from "./lab";

// anywidget 0.11 warns that a named `render` export "will likely be deprecated": each view module
// exports `{ render }` as its default only (the AFM way), which every frontend loads.
test.each([
  ["lab", lab],
  ["explorer", explorer],
  ["dashboard", dashboard],
  ["align", align],
] as const)("%s exports render through its default export only", (_name, mod) => {
  expect("render" in mod).toBe(false);
  expect(typeof mod.default.render).toBe("function");
});
