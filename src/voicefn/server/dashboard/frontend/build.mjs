// Rebuilds the dashboard's vendored scripts in ../static from the versions in package-lock.json:
//   cd src/voicefn/server/dashboard/frontend && npm ci && npm run build
// editor.js   the CodeMirror 6 JSON editor (src/editor.js), one minified IIFE: window.VoicefnEditor
// htmx.min.js copied from the htmx.org package
// VERSIONS    each file's packages, versions and sha256 (tests check the files against it)
// LICENSES    the licences of everything bundled
import { createHash } from "node:crypto";
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "static");
const lock = JSON.parse(readFileSync(join(here, "package-lock.json"), "utf8"));

const result = await build({
  entryPoints: [join(here, "src", "editor.js")],
  outfile: join(out, "editor.js"),
  bundle: true,
  format: "iife",
  globalName: "VoicefnEditor",
  minify: true,
  target: ["es2020"],
  legalComments: "none",
  metafile: true,
  logLevel: "warning",
});
copyFileSync(join(here, "node_modules", "htmx.org", "dist", "htmx.min.js"), join(out, "htmx.min.js"));

const sha256 = (file) => createHash("sha256").update(readFileSync(join(out, file))).digest("hex");
const pkg = (name) => lock.packages[`node_modules/${name}`];
const bundled = new Set();
for (const [input, used] of Object.entries(Object.values(result.metafile.outputs)[0].inputs)) {
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
  if (m && used.bytesInOutput > 0) bundled.add(m[1]);
}
const names = [...bundled].sort();
const lines = [
  "# Built from npm packages by frontend/build.mjs (npm ci && npm run build); nothing is fetched at run time.",
  "# file        sha256                                                            packages",
  `editor.js    ${sha256("editor.js")}  ${names.map((n) => `${n}@${pkg(n).version}`).join(" ")}`,
  `htmx.min.js  ${sha256("htmx.min.js")}  htmx.org@${pkg("htmx.org").version}`,
  "",
];
writeFileSync(join(out, "VERSIONS"), lines.join("\n"));
const licences = ["Licences of the packages in editor.js and htmx.min.js (from their package.json):", ""];
for (const n of [...names, "htmx.org"]) {
  const meta = JSON.parse(readFileSync(join(here, "node_modules", n, "package.json"), "utf8"));
  licences.push(`${n}@${meta.version}: ${meta.license}`);
}
writeFileSync(join(out, "LICENSES"), licences.join("\n") + "\n");
console.log(lines.join("\n"));
