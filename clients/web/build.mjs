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
} else {
  const { buildApp } = await import("./build-app.mjs");
  await buildApp();
}
