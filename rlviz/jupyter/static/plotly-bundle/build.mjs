// Builds the book's plotly.js bundle: plotly.js with the trace types the book draws only
// (index.js), the way plotly.js builds its own partial bundles (its tasks/partial_bundle.mjs
// and tasks/util/bundle_wrapper.mjs: esbuild, minified, the UMD wrapper, the license header,
// the attributes' documentation stripped), minus world-calendars and maplibre-gl's CSS.
// Usage (see ../README.md): npm ci && node build.mjs ../plotly-rlviz-4.1.1.min.js
import fs from 'fs';
import * as acorn from 'acorn';
import { build } from 'esbuild';

const out = process.argv[2];
if (!out) throw new Error('usage: node build.mjs OUTPUT.min.js');
const version = JSON.parse(fs.readFileSync('node_modules/plotly.js/package.json', 'utf-8')).version;

// Strip the attributes' documentation (description, hrName, requiredOpts, otherOpts: read by
// Plotly.PlotSchema only), as plotly.js's compress_attributes transform does for its own
// bundles; done on the syntax tree (acorn) instead of with that transform's regexes.
const META = new Set(['description', 'hrName', 'requiredOpts', 'otherOpts']);
function stripMeta(src) {
  const cut = [];
  (function walk(node) {
    if (node.type === 'ObjectExpression') {
      node.properties.forEach((p, k) => {
        const key = p.type === 'Property' && !p.computed && (p.key.name || p.key.value);
        if (META.has(key)) {
          const next = node.properties[k + 1];
          const comma = next ? 0 : (/^\s*,/.exec(src.slice(p.end)) || [''])[0].length;
          cut.push([p.start, next ? next.start : p.end + comma]);
        }
      });
    }
    for (const v of Object.values(node)) {
      if (Array.isArray(v)) v.forEach((c) => c && typeof c.type === 'string' && walk(c));
      else if (v && typeof v.type === 'string') walk(v);
    }
  })(acorn.parse(src, { ecmaVersion: 'latest', sourceType: 'script',
                        allowReturnOutsideFunction: true }));
  cut.sort((a, b) => b[0] - a[0]).forEach(([a, b]) => { src = src.slice(0, a) + src.slice(b); });
  return src;
}
const stripMetaPlugin = {
  name: 'strip-meta-attributes',
  setup(b) {
    b.onLoad({ filter: /plotly\.js[\\/]src[\\/].*\.js$/ }, async (f) => ({
      contents: stripMeta(await fs.promises.readFile(f.path, 'utf-8')), loader: 'js' }));
  },
};

await build({
  entryPoints: ['index.js'], outfile: out, format: 'iife', globalName: 'Plotly',
  bundle: true, minify: true, sourcemap: false, target: 'es2016', logLevel: 'warning',
  plugins: [stripMetaPlugin],
  alias: { stream: 'stream-browserify' },
  define: { global: 'window', 'define.amd': 'false', 'process.env.NODE_DEBUG': 'false' },
});
const css = out.replace(/\.js$/, '.css');
if (fs.existsSync(css)) fs.unlinkSync(css);  // maplibre-gl's CSS: for map subplots only

const header = [
  '/**',
  `* plotly.js (rlviz: scatter, bar, heatmap - minified) v${version}`,
  '* Copyright 2012-2026, Plotly, Inc.',
  '* All rights reserved.',
  '* Licensed under the MIT license',
  '*/',
  '',
].join('\n');
const umdStart = [
  '(',
  ' function(root, factory) {',
  '  if (typeof module === "object" && module.exports) {',
  '   module.exports = factory();',
  '  } else {',
  '   root.moduleName = factory();',
  '  }',
  '} (typeof self !== "undefined" ? self : this, () => {',
  '',
].join('\n');
const umdEnd = ['', 'window.Plotly = Plotly;', 'return Plotly;', '}));'].join('\n');
fs.writeFileSync(out, header + umdStart + fs.readFileSync(out, 'utf-8') + umdEnd);
