"""`symdiff graph --format html`: one self-contained page, checked with an HTML parser (node count, search box,
groups, a node's details with its SymPy formula, no network references), with both layouts (Graphviz and the
built-in layered one); its script runs under Node with a small fake DOM when `node` is installed, and headless
Chromium takes a screenshot when `chromium` is installed."""
from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from symdiff import cli

MLP = """\
import symdiff as sd
x = sd.input("x", (4, 3))
labels = sd.input("labels", (4,), dtype="int64")
W1 = sd.param("W1", (3, 6))
b1 = sd.param("b1", (6,))
W2 = sd.param("W2", (6, 3))
h = sd.tanh(x @ W1 + b1)
loss = sd.cross_entropy(sd.exp(-h * h) @ W2, labels)
"""


class Page(HTMLParser):
    """Elements by tag with their attributes; the text of <script> elements; svg <g> elements and titles."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.scripts: list[tuple[dict, str]] = []
        self.groups: list[tuple[str, str]] = []  # (class of the <g>, its <title>)
        self._in_script: dict | None = None
        self._g_stack: list[str] = []
        self._title = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "script":
            self._in_script, self._buf = a, ""
        elif tag == "g":
            self._g_stack.append(a.get("class", ""))
        elif tag == "title" and self._g_stack:
            self._title, self._buf = True, ""

    def handle_endtag(self, tag):
        if tag == "script" and self._in_script is not None:
            self.scripts.append((self._in_script, self._buf))
            self._in_script = None
        elif tag == "g" and self._g_stack:
            self._g_stack.pop()
        elif tag == "title" and self._title:
            self.groups.append((self._g_stack[-1], self._buf))
            self._title = False

    def handle_data(self, data):
        if self._in_script is not None or self._title:
            self._buf += data

    def find(self, tag, **want):
        return [a for t, a in self.tags if t == tag and all(a.get(k.replace("_", "-")) == v for k, v in want.items())]

    def data(self) -> dict:
        (text,) = [t for a, t in self.scripts if a.get("id") == "graph-data"]
        return json.loads(text)


@pytest.fixture
def model(tmp_path) -> Path:
    p = tmp_path / "mlp.py"
    p.write_text(MLP)
    return p


def page_of(capsys, model, out, *extra):
    rc = cli.main(["graph", str(model), "--backward", "--format", "html", "-o", str(out), *extra])
    _, err = capsys.readouterr()
    assert rc == 0, err
    return Page(Path(out).read_text()), err


def listing_ids(capsys, model) -> int:
    assert cli.main(["graph", str(model), "--backward"]) == 0
    text = capsys.readouterr()[0]
    return sum(1 for ln in text.splitlines() if ln.startswith("%"))


def explain(capsys, model, k) -> list[str]:
    assert cli.main(["explain", str(model), "--backward", "--node", str(k)]) == 0
    return capsys.readouterr()[0].splitlines()[1:]  # without the listing line


def check_page(p: Page, capsys, model):
    d = p.data()
    nodes = {n["id"]: n for n in d["nodes"]}
    assert len(nodes) == listing_ids(capsys, model) > 30  # the same numbering as `symdiff graph --backward`
    titles = [t for c, t in p.groups if c == "node"]
    assert sorted(titles, key=lambda t: int(t[1:])) == [f"n{i}" for i in sorted(nodes)]  # one drawn node each
    assert {t for c, t in p.groups if c == "cluster"} == {"cluster_forward", "cluster_backward"}
    assert len([t for c, t in p.groups if c == "edge"]) == len({(i, k) for k, n in nodes.items() for i in n["inputs"]})
    (search,) = p.find("input", id="search")
    assert search["type"] == "search"
    assert {a["data-group"] for a in p.find("input", **{"class": "group"})} == {"forward", "backward"}
    assert {n["group"] for n in nodes.values()} == {"leaves", "forward", "backward"}
    assert p.find("button", id="zoom-in") and p.find("button", id="fit") and p.find("div", id="details")
    # self-contained: nothing is fetched when the page is viewed
    assert not p.find("link") and all("src" not in a for t, a in p.tags if t in ("script", "img", "iframe"))
    assert not [a for t, a in p.tags for k, v in a.items() if k in ("href", "xlink:href", "src") and v
                and v.startswith(("http", "//"))]
    # a backward node made from an elementwise derivative: what it differentiates and the SymPy formula
    (tanh,) = [n for n in nodes.values() if n["op"] == "tanh"]
    assert tanh["role"] == "forward" and tanh["formula"] == explain(capsys, model, tanh["id"])
    from_tanh = [n for n in nodes.values() if n["d_of"] == tanh["id"]]
    assert from_tanh and all(n["role"] == "backward" and n["group"] == "backward" for n in from_tanh)
    assert all(n["derivative"] == tanh["formula"] for n in from_tanh)
    assert any("d v%d / d v" % tanh["id"] in ln for ln in tanh["formula"])
    assert any("1 - tanh(" in ln for ln in tanh["formula"])  # d tanh(u)/du, as SymPy writes it
    assert any(f"d%{tanh['id']}" in n["label"] for n in from_tanh)
    (dW1,) = [n for n in nodes.values() if n["name"] == "dloss/dW1"]
    assert dW1["role"] == "grad" and nodes[dW1["d_of"]]["op"] == "matmul" and dW1["output"]
    mm = nodes[dW1["d_of"]]
    assert (mm["shape"], mm["dtype"], mm["group"]) == ([4, 6], "float32", "forward")
    assert all(dW1["id"] in nodes[i]["users"] for i in dW1["inputs"])
    assert not any(n["d_of"] is not None for n in nodes.values() if n["group"] == "forward")
    return d


def test_html_page_with_graphviz(model, tmp_path, capsys):
    if shutil.which("dot") is None:
        pytest.skip("Graphviz dot not installed (the layered layout is tested below)")
    p, err = page_of(capsys, model, tmp_path / "g.html")
    assert "layout: Graphviz dot" in err and p.find("body", data_layout="dot")
    check_page(p, capsys, model)


def test_html_page_without_graphviz_uses_the_layered_layout(model, tmp_path, capsys, monkeypatch):
    real = shutil.which
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "dot" else real(name, *a, **k))
    p, err = page_of(capsys, model, tmp_path / "g.html")
    assert "layout: built-in layered layout (Graphviz dot not found)" in err and p.find("body", data_layout="layered")
    check_page(p, capsys, model)


def test_html_without_output_writes_model_html(model, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["graph", str(model), "--format", "html"]) == 0
    assert "wrote mlp.html (html, forward" in capsys.readouterr()[1]
    d = Page((tmp_path / "mlp.html").read_text()).data()
    assert {n["group"] for n in d["nodes"]} == {"leaves", "forward"}  # forward only: no backward group
    assert cli.main(["graph", str(model), "-o", "x.htm"]) == 0 and (tmp_path / "x.htm").read_text().startswith("<!DOCTYPE")


FAKE_DOM = Path(__file__).with_name("fake_dom.js")


@pytest.mark.parametrize("layout", ["dot", "layered"])
def test_page_script_runs_search_details_groups(model, tmp_path, capsys, monkeypatch, layout):
    """The page's script under Node with a minimal fake DOM: search marks hits, a click shows the details
    (with the SymPy derivative), unticking a group hides its nodes and edges."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node not installed")
    if layout == "dot" and shutil.which("dot") is None:
        pytest.skip("Graphviz dot not installed")
    if layout == "layered":
        real = shutil.which
        monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "dot" else real(name, *a, **k))
    p, _ = page_of(capsys, model, tmp_path / "g.html")
    d = p.data()
    (tanh,) = [n["id"] for n in d["nodes"] if n["op"] == "tanh"]
    (script,) = [t for a, t in p.scripts if not a]
    spec = {"data": json.dumps(d), "groups": p.groups, "query": "tanh", "show": next(
        n["id"] for n in d["nodes"] if n["d_of"] == tanh), "hide": "backward"}
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    (tmp_path / "page.js").write_text(script)
    r = subprocess.run([node, str(FAKE_DOM), str(tmp_path / "spec.json"), str(tmp_path / "page.js")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["hits"] == [n["id"] for n in d["nodes"] if "tanh" in " ".join([n["op"], *n["label"]])]
    assert res["hits_text"].startswith(f"{len(res['hits'])} match")
    assert "SymPy derivative it came from" in res["details"] and "1 - tanh(" in res["details"]
    assert f"%{tanh} tanh" in res["details"]  # the node it differentiates, as a link
    back = {n["id"] for n in d["nodes"] if n["group"] == "backward"}
    assert set(res["gone"]) == back and res["gone_edges"] > 0 and res["gone_clusters"] == ["backward"]
    assert res["viewbox_changed"]  # Enter in the search box centres on the first hit


def test_html_page_in_headless_chromium(model, tmp_path, capsys):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("headless Chromium not installed")
    page_of(capsys, model, tmp_path / "g.html")
    shot = tmp_path / "g.png"
    r = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                        "--window-size=1400,900", "--virtual-time-budget=3000", (tmp_path / "g.html").as_uri()],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert shot.exists() and shot.stat().st_size > 10_000  # a rendered page, not a blank one
    dump = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                           (tmp_path / "g.html").as_uri()], capture_output=True, text=True, timeout=120)
    assert 'viewBox="' in dump.stdout and "Click a node" in dump.stdout  # the script ran and kept the page
