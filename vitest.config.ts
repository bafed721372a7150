import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    environment: "happy-dom",
    include: ["js/**/*.test.ts"],
    // `import "./lab.css"` in js/lab.ts: CSS modules not listed here resolve to an empty module.
    css: { include: [] },
  },
});
