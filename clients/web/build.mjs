// One command builds everything: `npm run build` (the app bundle into chatd/web/static/),
// `node build.mjs --tests` (the vector tests into dist-test/, run with `node --test dist-test/`).
import { build } from "esbuild";
import { readdirSync } from "node:fs";

const tests = process.argv.includes("--tests");
if (tests) {
  const entries = readdirSync("test").filter((f) => f.endsWith(".test.ts")).map((f) => `test/${f}`);
  await build({
    entryPoints: entries,
    outdir: "dist-test",
    outExtension: { ".js": ".mjs" },
    bundle: true,
    platform: "node",
    format: "esm",
    target: "node20",
    logLevel: "warning",
  });
  // The same tests for Chromium (tests/web/test_web_vectors.py): node:test, node:assert and
  // the vector loader replaced by small browser shims.
  const shims = {
    name: "browser-shims",
    setup(b) {
      b.onResolve({ filter: /^node:test$/ }, () => ({ path: new URL("test/browser/shim-test.ts", import.meta.url).pathname }));
      b.onResolve({ filter: /^node:assert\/strict$/ }, () => ({ path: new URL("test/browser/shim-assert.ts", import.meta.url).pathname }));
      b.onResolve({ filter: /\/util\.js$/ }, (a) => (a.importer.includes("/test/") && !a.importer.includes("/browser/") ? { path: new URL("test/browser/shim-util.ts", import.meta.url).pathname } : undefined));
    },
  };
  await build({
    entryPoints: ["test/browser/all.ts"],
    outfile: "dist-test/browser/vectors.js",
    bundle: true,
    platform: "browser",
    format: "iife",
    target: "es2022",
    plugins: [shims],
    logLevel: "warning",
  });
} else {
  const { buildApp } = await import("./build-app.mjs");
  await buildApp();
}
