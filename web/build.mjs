// Build web/dist (committed: `cargo build` embeds it and needs no npm; CI rebuilds it and
// fails on a difference). Deterministic: same sources and pinned esbuild, same bytes.
import { build } from "esbuild";
import { copyFileSync, mkdirSync } from "node:fs";

const here = new URL(".", import.meta.url).pathname;
mkdirSync(`${here}dist`, { recursive: true });
await build({
  entryPoints: [`${here}src/main.ts`],
  bundle: true,
  format: "esm",
  target: "es2022",
  minify: true,
  legalComments: "none",
  charset: "utf8",
  outfile: `${here}dist/app.js`,
  logLevel: "warning",
});
copyFileSync(`${here}index.html`, `${here}dist/index.html`);
copyFileSync(`${here}app.css`, `${here}dist/app.css`);
