"""Every ```python block of README.md and docs/*.md runs, and prints what the doc says it prints.

Conventions (HTML comments, invisible when the Markdown is rendered):

- The blocks of one file run in order in ONE namespace (a later block may use an earlier block's names),
  in a fresh temporary working directory.
- ``# -> TEXT`` at the end of a line states printed output: the block's printed lines must be exactly the
  ``# ->`` texts of the block, in order (``...`` inside a text matches anything). A block without ``# ->``
  comments may print anything.
- ``<!-- doc-test: output -->`` just before a plain ``` block: the block shows output of the python block
  before it; the stdout of that python block must be the lines of its output blocks, concatenated in order
  (prose may stand between them; a line ``...`` matches any number of lines).
- ``<!-- doc-test: file NAME -->`` just before a block also writes it to NAME in the working directory (a model
  file that a later block or command loads).
- ``<!-- doc-test: setup`` ... ``-->`` runs the code inside the comment first, hidden from the reader (the data
  a fragment assumes, e.g. ``xb``).
- ``<!-- doc-test: quote PATH -->`` just before a block: the block quotes source code; instead of running
  it, check that each of its lines (imports aside) is a line of PATH, so the quote cannot drift.
- ``<!-- doc-test: skip REASON -->`` just before a block does not run it (use only where running is
  impossible here, e.g. a GPU); the reason is required.
"""
from __future__ import annotations

import contextlib
import io
import re
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARK = re.compile(r"<!-- doc-test: (file|skip|setup|quote)\b(.*?)-->", re.S)
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
OUTPUT = re.compile(r"<!-- doc-test: output -->\s*$")
ARROW = re.compile(r"#\s*->\s?(.*)$")


@dataclass
class Block:
    line: int  # 1-based line of the opening fence
    code: str
    skip: str = ""
    file: str = ""
    quote: str = ""
    setup: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)  # the doc-test: output blocks that follow

    def expected(self) -> list[str] | None:
        out = [m.group(1).rstrip() for ln in self.code.splitlines() if (m := ARROW.search(ln))]
        return out or None


def blocks(path: Path) -> list[Block]:
    """The python blocks of ``path`` with the doc-test markers written since the previous block."""
    text = path.read_text()
    found, pending, pos = [], [], 0
    for m in FENCE.finditer(text):
        if m.group(1) != "python":
            if OUTPUT.search(text, pos, m.start()):
                assert found, f"{path.name}: a doc-test output block before any python block"
                found[-1].outputs.append(m.group(2))
            pos = m.end()
            continue
        pending = MARK.findall(text, pos, m.start())
        b = Block(text.count("\n", 0, m.start()) + 1, m.group(2))
        for kind, body in pending:
            if kind == "skip":
                b.skip = body.strip() or "(no reason given)"
            elif kind == "file":
                b.file = body.strip()
            elif kind == "quote":
                b.quote = body.strip()
            else:
                b.setup.append(body)
        found.append(b)
        pos = m.end()
    return found


def output_matches(shown: list[str], got: list[str]) -> bool:
    """``shown`` (the doc's output lines, ``...`` lines matching any run of lines) against printed ``got``."""
    pat = "\n".join(".*?" if ln.strip() == "..." else re.escape(ln.rstrip()) for ln in shown)
    return re.fullmatch(pat, "\n".join(ln.rstrip() for ln in got), re.S) is not None


def matches(expected: list[str], got: list[str]) -> bool:
    pat = [re.compile("^" + ".*".join(map(re.escape, e.split("..."))) + "$") for e in expected]
    return len(pat) == len(got) and all(p.match(g.rstrip()) for p, g in zip(pat, got))


def test_markers_are_well_formed():
    for path in DOCS:
        for b in blocks(path):
            assert b.skip != "(no reason given)", f"{path.name}:{b.line}: a doc-test skip needs a reason"


@pytest.mark.parametrize("path", [p for p in DOCS if blocks(p)], ids=lambda p: p.name)
def test_doc_blocks_run(path, tmp_path, monkeypatch, scratch_ops):
    monkeypatch.chdir(tmp_path)
    ns: dict = {"__name__": "__doc__"}
    for b in blocks(path):
        if b.skip:
            continue
        where = f"{path.relative_to(ROOT)}:{b.line}"
        if b.quote:
            source = {ln.strip() for ln in (ROOT / b.quote).read_text().splitlines()}
            missing = [ln for ln in b.code.splitlines() if ln.strip() and not ln.startswith(("import ", "from "))
                       and ln.strip() not in source]
            assert not missing, f"{where} quotes {b.quote}, which has no line {missing[0]!r}"
            continue
        if b.file:
            (tmp_path / b.file).write_text(b.code)
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                for s in b.setup:
                    exec(compile(s, f"{where} (setup)", "exec"), ns)
                exec(compile(b.code, where, "exec"), ns)
        except Exception:
            pytest.fail(f"the python block at {where} fails:\n{b.code}\n{traceback.format_exc(limit=-3)}")
        if b.outputs:
            shown = "".join(b.outputs).splitlines()
            assert output_matches(shown, out.getvalue().splitlines()), (
                f"the python block at {where} prints\n{out.getvalue()}\nbut the doc shows\n" + "\n".join(shown))
        want = b.expected()
        if want is not None:
            got = out.getvalue().splitlines()
            assert matches(want, got), (f"the python block at {where} prints\n{out.getvalue()}\nbut the doc shows "
                                        f"(# -> comments)\n" + "\n".join(want))


def _regen():
    import importlib.util
    spec = importlib.util.spec_from_file_location("docs_regen", ROOT / "docs" / "regen.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_generated_regions_match_their_source():
    """Machine numbers are generated (docs/regen.py): a bench table equals what the benchmark JSON gives, and a
    `run` region holds one fenced block of `$ CMD` and its output (regenerate with `python docs/regen.py`)."""
    regen = _regen()
    seen = set()
    for path in DOCS:
        for m in regen.regions(path.read_text()):
            kind, arg, body = m.group(2), m.group(3).strip(), m.group(4)
            seen.add(kind)
            if kind.startswith("bench"):
                assert body == regen.generate(kind, arg), f"{path.name}: stale {arg} table: run python docs/regen.py"
            else:
                assert body.startswith(f"```\n$ {arg}\n") and body.endswith("```\n") and body.count("```") == 2, \
                    f"{path.name}: the region of `{arg}` is not one fenced block of its output"
    assert seen == {"bench-table", "bench-full", "run"}
