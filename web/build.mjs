// Bundles the dashboard: src/main.ts (+ its CSS) -> OUTDIR/assets/app-<hash>.{js,css}
// and OUTDIR/index.html pointing at those hashed names, so they can be cached
// for a year while index.html is always revalidated. Usage: node build.mjs OUTDIR
import * as esbuild from 'esbuild';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const out = path.resolve(process.argv[2] || path.join(here, 'dist'));
fs.rmSync(out, { recursive: true, force: true });
fs.mkdirSync(path.join(out, 'assets'), { recursive: true });

const result = await esbuild.build({
  absWorkingDir: here,
  entryPoints: { app: 'src/main.ts' },
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2020'],
  outdir: path.join(out, 'assets'),
  entryNames: '[name]-[hash]',
  metafile: true,
  logLevel: 'warning',
});
let js = null, css = null;
for (const file of Object.keys(result.metafile.outputs)) {
  const name = path.basename(file);
  if (name.endsWith('.js')) js = name;
  else if (name.endsWith('.css')) css = name;
}
if (!js || !css) throw new Error('dashboard: esbuild produced no JS or CSS');
const html = fs.readFileSync(path.join(here, 'src/index.html'), 'utf8')
  .replaceAll('%APP_JS%', `/assets/${js}`)
  .replaceAll('%APP_CSS%', `/assets/${css}`);
fs.writeFileSync(path.join(out, 'index.html'), html);
