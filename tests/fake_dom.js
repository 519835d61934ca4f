// A minimal fake DOM for the graph page's script (tests/test_graph_html.py): node fake_dom.js SPEC.json PAGE.js
// SPEC: {data: the page's JSON, groups: [[svg g class, title]...], query, show: node id, hide: group}.
// Prints what the script did: search hits, the details panel, what collapsing a group hid.
'use strict';
const fs = require('fs');
const vm = require('vm');
const spec = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const script = fs.readFileSync(process.argv[3], 'utf8');

function classList() {
  const s = new Set();
  return {add: c => s.add(c), remove: c => s.delete(c), contains: c => s.has(c),
          toggle: (c, on) => { if (on === undefined) on = !s.has(c); if (on) s.add(c); else s.delete(c); return on; }};
}
function M(a, d, e, f) {  // a scale-and-translate matrix, enough for getScreenCTM
  return {a: a, b: 0, c: 0, d: d, e: e, f: f,
          inverse() { return M(1 / this.a, 1 / this.d, -this.e / this.a, -this.f / this.d); },
          multiply(o) { return M(this.a * o.a, this.d * o.d, this.a * o.e + this.e, this.d * o.f + this.f); }};
}
function el(props) {
  const e = {classList: classList(), style: {}, dataset: {}, listeners: {}, textContent: '', innerHTML: '',
    value: '', checked: true, attrs: {},
    addEventListener(t, f) { this.listeners[t] = f; },
    fire(t, ev) { this.listeners[t](Object.assign({preventDefault() {}, stopPropagation() {}}, ev || {})); },
    querySelectorAll() { return []; }, querySelector() { return null; },
    getBBox() { return {x: 10, y: 10, width: 40, height: 20}; }, getScreenCTM() { return M(1, 1, 0, 0); },
    removeAttribute(k) { delete this.attrs[k]; }, setAttribute(k, v) { this.attrs[k] = v; }};
  return Object.assign(e, props || {});
}
const gs = {node: [], edge: [], cluster: []};
for (const [cls, title] of spec.groups) {
  if (!gs[cls]) continue;
  const t = el({textContent: title});
  const g = el({title: title});
  g.querySelector = () => t;
  gs[cls].push(g);
}
const svg = el({viewBox: {baseVal: {x: 0, y: 0, width: 4000, height: 3000}},
  querySelectorAll(sel) { return gs[sel.split('.')[1]] || []; },
  getBoundingClientRect() { return {left: 0, top: 0, width: 1000, height: 800}; }});
const ids = {'graph-data': el({textContent: spec.data})};
for (const k of ['search', 'hits', 'zoom-in', 'zoom-out', 'fit', 'details']) ids[k] = el();
const checks = ['forward', 'backward'].map(g => el({dataset: {group: g}}));
global.document = {getElementById: k => ids[k], querySelector: s => (s === '#view svg' ? svg : null),
                   querySelectorAll: s => (s === 'input.group' ? checks : [])};
global.window = {addEventListener() {}};
vm.runInThisContext(script);

const id = g => parseInt(g.title.slice(1));
const before = svg.attrs.viewBox;
ids.search.value = spec.query;
ids.search.fire('input');
const hits = gs.node.filter(g => g.classList.contains('hit')).map(id).sort((a, b) => a - b);
const hitsText = ids.hits.textContent;
ids.search.fire('keydown', {key: 'Enter'});
const moved = svg.attrs.viewBox !== before;
window.symdiffShow(spec.show);
const details = ids.details.innerHTML;
const cb = checks.find(c => c.dataset.group === spec.hide);
cb.checked = false;
cb.fire('change');
const out = {hits: hits, hits_text: hitsText, viewbox_changed: moved, details: details,
  gone: gs.node.filter(g => g.classList.contains('gone')).map(id).sort((a, b) => a - b),
  gone_edges: gs.edge.filter(g => g.classList.contains('gone')).length,
  gone_clusters: gs.cluster.filter(g => g.classList.contains('gone')).map(g => g.title.replace('cluster_', ''))};
process.stdout.write(JSON.stringify(out));
