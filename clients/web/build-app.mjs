// Builds the web app into chatd/web/static/ (or --out DIR): app-<hash>.js, app-<hash>.css and
// index.html naming them with Subresource Integrity. Deterministic: the same sources and lock
// give the same bytes (tests/web/test_bundle.py checks the committed files against a rebuild).
import { build } from "esbuild";
import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export async function buildApp() {
  const i = process.argv.indexOf("--out");
  const out = i > 0 ? process.argv[i + 1] : join("..", "..", "chatd", "web", "static");
  const result = await build({
    entryPoints: ["app/main.tsx"],
    bundle: true,
    minify: true,
    format: "esm",
    target: "es2022",
    platform: "browser",
    write: false,
    legalComments: "none",
    jsx: "automatic",
    jsxImportSource: "preact",
    logLevel: "warning",
  });
  const js = result.outputFiles[0].contents;
  const css = readFileSync("app/style.css");
  const name = (data, ext) => `app-${createHash("sha256").update(data).digest("hex").slice(0, 16)}.${ext}`;
  const sri = (data) => `sha384-${createHash("sha384").update(data).digest("base64")}`;
  const jsName = name(js, "js");
  const cssName = name(css, "css");
  mkdirSync(out, { recursive: true });
  for (const f of readdirSync(out)) if (/^app-.*\.(js|css)$/.test(f) || f === "index.html") rmSync(join(out, f));
  writeFileSync(join(out, jsName), js);
  writeFileSync(join(out, cssName), css);
  writeFileSync(join(out, "favicon.svg"), readFileSync("app/favicon.svg"));
  writeFileSync(join(out, "sw.js"), readFileSync("app/sw.js")); // Web Push (app/push.tsx): a stable name, served no-cache
  const html = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="light dark">
<title>chatd</title>
<link rel="icon" href="/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/${cssName}" integrity="${sri(css)}">
<script type="module" src="/${jsName}" integrity="${sri(js)}"></script>
</head>
<body>
<main id="app" aria-busy="true"><p class="splash">chatd</p></main>
<noscript>chatd's web app needs JavaScript: all of its encryption runs in this page.</noscript>
</body>
</html>
`;
  writeFileSync(join(out, "index.html"), html);
  console.log(`${jsName} ${js.length} bytes, ${cssName} ${css.length} bytes -> ${out}`);
}
