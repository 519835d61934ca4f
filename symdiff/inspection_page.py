"""The static parts of the HTML graph page (``symdiff.inspection_html``): the page template, its CSS and its
JavaScript, all inlined into one self-contained file (no network access when the page is viewed).

The script reads the node records from ``<script type="application/json" id="graph-data">`` and works on any
SVG whose nodes are ``<g class="node"><title>nK</title>``, edges ``<g class="edge"><title>nA->nB</title>`` and
groups ``<g class="cluster"><title>cluster_G</title>`` -- what Graphviz ``dot -Tsvg`` writes for
``symdiff.to_dot`` and what the built-in layered layout writes."""
from __future__ import annotations

CSS = """
body { margin: 0; font: 14px Helvetica, Arial, sans-serif; display: flex; height: 100vh; }
#main { flex: 1; display: flex; flex-direction: column; min-width: 0; }
#bar { padding: 6px 10px; border-bottom: 1px solid #ccc; display: flex; gap: 14px; align-items: center;
       flex-wrap: wrap; background: #f7f7f7; }
#bar h1 { font-size: 15px; margin: 0; }
#search { width: 220px; font-size: 14px; padding: 3px 6px; }
#view { flex: 1; overflow: hidden; cursor: grab; background: #fff; }
#view svg { width: 100%; height: 100%; user-select: none; }
#side { width: 380px; border-left: 1px solid #ccc; padding: 10px 14px; overflow: auto; background: #fcfcfc; }
#side h2 { font-size: 16px; margin: 4px 0 8px; }
#side table { border-collapse: collapse; font-size: 13px; }
#side td { padding: 2px 6px 2px 0; vertical-align: top; }
#side td:first-child { color: #666; white-space: nowrap; }
#side pre { font-size: 12px; background: #f0f0f0; padding: 6px; white-space: pre-wrap; }
a.ref { color: #1a55b0; cursor: pointer; text-decoration: underline; }
.legend span { display: inline-block; padding: 1px 7px; border: 1px solid #999; border-radius: 8px;
               margin-right: 4px; font-size: 12px; }
.node { cursor: pointer; }
.node.hit ellipse, .node.hit polygon, .node.hit rect, .node.hit path { stroke: #e8a400; stroke-width: 4px; }
.node.sel ellipse, .node.sel polygon, .node.sel rect, .node.sel path { stroke: #000; stroke-width: 3px; }
.dim { opacity: 0.2; }
.gone { display: none; }
"""

SCRIPT = r"""
(function () {
  const data = JSON.parse(document.getElementById('graph-data').textContent);
  const byId = new Map(data.nodes.map(n => [n.id, n]));
  const svg = document.querySelector('#view svg');
  svg.removeAttribute('width'); svg.removeAttribute('height');
  const vb0 = svg.viewBox.baseVal;
  let view = {x: vb0.x, y: vb0.y, w: vb0.width, h: vb0.height};
  const home = Object.assign({}, view);
  function apply() { svg.setAttribute('viewBox', [view.x, view.y, view.w, view.h].join(' ')); }
  const els = new Map(), edges = [], clusters = new Map();
  svg.querySelectorAll('g.node').forEach(g => {
    const id = parseInt(g.querySelector('title').textContent.slice(1));
    if (byId.has(id)) { els.set(id, g); g.addEventListener('click', e => { e.stopPropagation(); show(id); }); }
  });
  svg.querySelectorAll('g.edge').forEach(g => {
    const m = g.querySelector('title').textContent.match(/^n(\d+)->n(\d+)$/);
    if (m) edges.push({g: g, a: +m[1], b: +m[2]});
  });
  svg.querySelectorAll('g.cluster').forEach(g => {
    clusters.set(g.querySelector('title').textContent.replace('cluster_', ''), g);
  });
  // pan and zoom: drag moves the view box, the wheel scales it about the pointer
  function toSvg(ev) {
    const r = svg.getBoundingClientRect();
    const s = Math.max(view.w / r.width, view.h / r.height);
    const ox = view.x + (view.w - r.width * s) / 2, oy = view.y + (view.h - r.height * s) / 2;
    return {x: ox + (ev.clientX - r.left) * s, y: oy + (ev.clientY - r.top) * s, s: s};
  }
  let drag = null;
  svg.addEventListener('mousedown', ev => { drag = {cx: ev.clientX, cy: ev.clientY, x: view.x, y: view.y, s: toSvg(ev).s}; });
  window.addEventListener('mouseup', () => { drag = null; });
  svg.addEventListener('mousemove', ev => {
    if (!drag) return;
    view.x = drag.x - (ev.clientX - drag.cx) * drag.s; view.y = drag.y - (ev.clientY - drag.cy) * drag.s; apply();
  });
  svg.addEventListener('wheel', ev => {
    ev.preventDefault();
    const p = toSvg(ev), k = ev.deltaY > 0 ? 1.2 : 1 / 1.2;
    view = {x: p.x - (p.x - view.x) * k, y: p.y - (p.y - view.y) * k, w: view.w * k, h: view.h * k};
    apply();
  }, {passive: false});
  function zoom(k) { const cx = view.x + view.w / 2, cy = view.y + view.h / 2;
    view = {x: cx - view.w * k / 2, y: cy - view.h * k / 2, w: view.w * k, h: view.h * k}; apply(); }
  document.getElementById('zoom-in').onclick = () => zoom(1 / 1.5);
  document.getElementById('zoom-out').onclick = () => zoom(1.5);
  document.getElementById('fit').onclick = () => { view = Object.assign({}, home); apply(); };
  function center(id) {
    const g = els.get(id), b = g.getBBox();  // node-local box -> the svg's user (view box) space
    const k = svg.getScreenCTM().inverse().multiply(g.getScreenCTM());
    const cx = k.a * (b.x + b.width / 2) + k.e, cy = k.d * (b.y + b.height / 2) + k.f;
    const w = Math.min(view.w, home.w / 2), h = view.h * w / view.w;
    view = {x: cx - w / 2, y: cy - h / 2, w: w, h: h}; apply();
  }
  // search by %id, name, op or label text
  const box = document.getElementById('search'), hits = document.getElementById('hits');
  function search() {
    const q = box.value.trim().toLowerCase(); const found = [];
    els.forEach((g, id) => {
      const n = byId.get(id);
      const hay = ['%' + id, n.op, n.name || '', n.label.join(' ')].join(' ').toLowerCase();
      const hit = q !== '' && (q === '%' + id || hay.includes(q));
      g.classList.toggle('hit', hit); g.classList.toggle('dim', q !== '' && !hit);
      if (hit) found.push(id);
    });
    hits.textContent = q ? found.length + ' match' + (found.length === 1 ? '' : 'es') : '';
    return found;
  }
  box.addEventListener('input', search);
  box.addEventListener('keydown', ev => { if (ev.key === 'Enter') { const f = search();
    if (f.length) { show(f[0]); center(f[0]); } } });
  // forward / backward groups: a collapsed group hides its nodes, their edges and its frame
  const hidden = new Set();
  function refresh() {
    els.forEach((g, id) => g.classList.toggle('gone', hidden.has(byId.get(id).group)));
    edges.forEach(e => e.g.classList.toggle('gone', hidden.has(byId.get(e.a).group) || hidden.has(byId.get(e.b).group)));
    clusters.forEach((g, name) => g.classList.toggle('gone', hidden.has(name)));
  }
  document.querySelectorAll('input.group').forEach(cb => cb.addEventListener('change', () => {
    if (cb.checked) hidden.delete(cb.dataset.group); else hidden.add(cb.dataset.group); refresh(); }));
  // details of a node
  const side = document.getElementById('details');
  function ref(id) { const n = byId.get(id); return '<a class="ref" data-id="' + id + '">%' + id + ' ' +
    esc(n.name || n.op) + '</a>'; }
  function esc(s) { return String(s).replace(/[&<>"]/g, c => ({'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}[c])); }
  function show(id) {
    const n = byId.get(id);
    els.forEach(g => g.classList.remove('sel')); if (els.get(id)) els.get(id).classList.add('sel');
    const rows = [['op', esc(n.op) + (n.attrs ? ' [' + esc(n.attrs) + ']' : '')], ['role', n.role + (n.group ? ' (' + n.group + ' group)' : '')],
      ['shape', '[' + n.shape.join(', ') + ']'], ['dtype', n.dtype]];
    if (n.name) rows.push(['name', esc(n.name)]);
    if (n.value !== null) rows.push(['value', esc(n.value)]);
    rows.push(['inputs', n.inputs.map(ref).join('<br>') || 'none']);
    rows.push(['users', n.users.map(ref).join('<br>') || 'none (an output)']);
    if (n.d_of !== null) rows.push(['differentiates', byId.has(n.d_of) ? ref(n.d_of) : esc(n.d_of_text)]);
    else if (n.d_of_text) rows.push(['differentiates', esc(n.d_of_text)]);
    let html = '<h2>%' + id + ' ' + esc(n.name || n.op) + '</h2><table>' +
      rows.map(r => '<tr><td>' + r[0] + '</td><td>' + r[1] + '</td></tr>').join('') + '</table>';
    if (n.derivative) html += '<p>SymPy derivative it came from (<code>symdiff explain --node ' + n.d_of +
      '</code>):</p><pre>' + esc(n.derivative.join('\n')) + '</pre>';
    if (n.formula) html += '<p>SymPy formulas (<code>symdiff explain --node ' + id + '</code>):</p><pre>' +
      esc(n.formula.join('\n')) + '</pre>';
    side.innerHTML = html;
    side.querySelectorAll('a.ref').forEach(a => a.addEventListener('click', () => { const k = +a.dataset.id;
      show(k); if (els.has(k)) center(k); }));
  }
  window.symdiffShow = show;
  apply();
})();
"""

TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>__CSS__</style></head>
<body data-layout="__LAYOUT__"><div id="main">
<div id="bar"><h1>__TITLE__</h1>
<input id="search" type="search" placeholder="search: %id, name or op (Enter: go)"> <span id="hits"></span>
<span>groups: __GROUPS__</span>
<button id="zoom-in" title="zoom in">+</button><button id="zoom-out" title="zoom out">&minus;</button>
<button id="fit">fit</button>
<span class="legend">__LEGEND__</span>
<span id="layout">__NODES__ nodes &middot; layout: __LAYOUT_TEXT__</span></div>
<div id="view">__SVG__</div></div>
<div id="side"><div id="details"><h2>Click a node</h2><p>Drag to pan, wheel to zoom; search by %id, name or op;
untick a group to collapse it. A backward node names the forward node it differentiates (d%k); a click shows
its inputs and, for an elementwise derivative, the SymPy formula it came from.</p></div></div>
<script type="application/json" id="graph-data">__DATA__</script>
<script>__SCRIPT__</script>
</body></html>
"""

__all__ = ["CSS", "SCRIPT", "TEMPLATE"]
