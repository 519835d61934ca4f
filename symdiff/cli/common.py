"""What every ``symdiff`` subcommand shares: exit statuses, the two user-facing errors, loading a model
file and choosing the tensor, its dtype and the leaves to differentiate.

A model file is *executed* (as ``python MODEL.py`` would, but with ``__name__ != "__main__"``), so
only run model files you trust. NAME (default ``loss``) is a module-level tensor of that file.
"""
from __future__ import annotations

import argparse
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_TOOL, EXIT_INTERNAL = 0, 1, 2, 3, 4


class UsageError(Exception):
    """A problem with the command line or the model file: one line on stderr, exit status 2."""


class ToolMissing(Exception):
    """An external program (dot, gcc) is missing: the fallback output was written; exit status 3."""


# -- loading a model -------------------------------------------------------------------------------------------

@dataclass
class Model:
    """A loaded model file and the tensor NAME chosen from it."""
    path: Path
    spec: str  # as given on the command line
    name: str  # the tensor's variable name
    tensor: object  # symdiff Node
    namespace: dict


def split_spec(spec: str) -> tuple[str, Optional[str]]:
    """``"model.py:loss"`` -> ``("model.py", "loss")``; ``"model.py"`` -> ``("model.py", None)``."""
    if ":" in spec:
        head, tail = spec.rsplit(":", 1)
        if tail.isidentifier() and head:
            return head, tail
        if tail == "":
            return head, None
    return spec, None


def tensors_in(ns: dict) -> list[str]:
    """The public names in a model file's namespace that are symdiff tensors."""
    from ..ir import Node
    return [k for k, v in ns.items() if isinstance(v, Node) and not k.startswith("_")]


def load_model(spec: str, default_name: str = "loss") -> Model:
    """Execute the model file and return the tensor NAME, or raise :class:`UsageError`."""
    from ..ir import Node
    path_text, name = split_spec(spec)
    name = name or default_name
    path = Path(path_text)
    if not path.exists():
        raise UsageError(f"model file {path_text} not found")
    if path.is_dir():
        raise UsageError(f"{path_text} is a directory, not a model file")
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read model file {path_text}: {e}") from None
    try:
        code = compile(source, str(path), "exec")
    except SyntaxError as e:
        where = f"{path_text}:{e.lineno}" if e.lineno else path_text
        raise UsageError(f"{where}: syntax error in the model file: {e.msg}") from None
    ns: dict = {"__name__": "__symdiff_model__", "__file__": str(path.resolve()), "__builtins__": __builtins__}
    model_dir = str(path.resolve().parent)
    sys.path.insert(0, model_dir)  # the model may import modules next to it
    try:
        exec(code, ns)  # noqa: S102 - running the user's model file is the point (see the module docstring)
    except (Exception, SystemExit) as e:
        frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == str(path)]
        where = f"{path_text}:{frames[-1].lineno}" if frames else path_text
        err = UsageError(f"{where}: running the model file failed: {type(e).__name__}: {e}{did_you_mean(e, ns)}")
        raise err from e
    finally:
        try:
            sys.path.remove(model_dir)
        except ValueError:
            pass
    if name not in ns:
        found = tensors_in(ns)
        hint = f"tensors in the file: {', '.join(found)}" if found else "the file defines no symdiff tensors"
        raise UsageError(f"{path_text} defines no tensor named {name!r} ({hint}); pick one with {path_text}:NAME")
    t = ns[name]
    if not isinstance(t, Node):
        raise UsageError(f"{name!r} in {path_text} is not a symdiff tensor (it is of type {type(t).__name__})")
    return Model(path, spec, name, t, ns)


def did_you_mean(e: BaseException, namespace: Optional[dict] = None) -> str:
    """`` (did you mean sd.tanh?)`` for a misspelt name, as Python's own hint (which an error printed on one
    line loses): a missing ``sd.``/``nn.`` attribute is matched against the public DSL names (the op
    table's and the registered functions'), another attribute against ``dir`` of its object, a NameError
    against the model file's names and the builtins."""
    import builtins
    import difflib
    import types
    obj, name = getattr(e, "obj", None), getattr(e, "name", None)
    if not name or not isinstance(e, (AttributeError, NameError)):
        return ""
    prefix = ""
    if isinstance(e, AttributeError):
        names = {n for n in dir(obj) if not n.startswith("_")} if obj is not None else set()
        if isinstance(obj, types.ModuleType) and obj.__name__.split(".")[0] == "symdiff":
            prefix = "sd." if obj.__name__ == "symdiff" else obj.__name__.split(".")[-1] + "."
            if obj.__name__ == "symdiff":
                from ..optable import DSL_FUNCTIONS, OPS
                names |= {d.api for d in OPS.values() if d.api} | set(DSL_FUNCTIONS)
    else:
        names = set(namespace or ()) | set(dir(builtins))
    close = difflib.get_close_matches(name, sorted(names), n=3, cutoff=0.6)
    return " (did you mean " + " or ".join(prefix + c for c in close) + "?)" if close else ""


def require_scalar(m: Model, why: str, hint: str = "") -> None:
    """Raise :class:`UsageError` unless the model tensor is a float scalar (``why`` names the need)."""
    t = m.tensor
    if t.shape != ():
        raise UsageError(f"{m.path}: {m.name!r} has shape {t.shape}, but {why} needs a scalar tensor "
                         f"(reduce it first, e.g. sd.mean{'; ' + hint if hint else ''})")
    if not t.dtype.startswith("float"):
        raise UsageError(f"{m.path}: {m.name!r} is an {t.dtype} tensor; {why} needs a float tensor")


def to_dtype(m: Model, dtype: Optional[str]) -> None:
    """Rebuild the model tensor in float64 (``--dtype float64``); float32 only checks the model."""
    if not dtype:
        return
    from ..ir import leaves
    floats = {n.dtype for n in leaves([m.tensor]) if n.dtype.startswith("float")} | \
        ({m.tensor.dtype} if m.tensor.dtype.startswith("float") else set())
    if dtype == "float64":
        from ..check import to_float64
        m.tensor = to_float64([m.tensor])[0]
    elif floats - {"float32"}:
        raise UsageError(f"{m.path}: {m.name!r} uses float64; --dtype float32 cannot narrow a model "
                         f"(declare it in float32, or use --dtype float64)")


def select_wrt(m: Model, wrt: Optional[str]) -> list:
    """The leaves to differentiate with respect to: ``--wrt a,b`` or every sd.param NAME depends on."""
    from ..ir import leaves
    found = leaves([m.tensor])
    by_name = {n.name: n for n in found}
    if wrt:
        names = [w.strip() for w in wrt.split(",") if w.strip()]
        if not names:
            raise UsageError("--wrt: give leaf names separated by commas, e.g. --wrt W1,b1")
        out = []
        for nm in names:
            if nm not in by_name:
                raise UsageError(f"--wrt: {m.name!r} in {m.path} does not depend on a leaf named {nm!r} "
                                 f"(its leaves: {', '.join(by_name) or 'none'})")
            if not by_name[nm].dtype.startswith("float"):
                raise UsageError(f"--wrt: {nm!r} is an {by_name[nm].dtype} tensor (labels); "
                                 f"gradients exist only for float leaves")
            if not any(o is by_name[nm] for o in out):
                out.append(by_name[nm])
        return out
    params = [n for n in found if n.op == "param"]
    if not params:
        raise UsageError(f"{m.name!r} in {m.path} depends on no sd.param; name the leaves to differentiate "
                         f"with --wrt (its leaves: {', '.join(by_name) or 'none'})")
    return params


def build_outputs(m: Model, wrt: list, backward: bool, simplified: bool) -> tuple[list, list]:
    """(outputs, forward outputs) as the graph/explain commands list them (the same numbering)."""
    from ..autodiff import grad
    from ..simplify import simplify
    outs = [m.tensor]
    if backward:
        outs += grad(m.tensor, wrt, simplify=simplified)
    if simplified:
        outs = simplify(outs)
    return outs, outs[:1]


MODEL_HELP = "model file (Python, executed) and the tensor in it, default NAME=loss"


def add_model_argument(p: argparse.ArgumentParser) -> None:
    """The positional ``MODEL.py[:NAME]`` every subcommand takes."""
    p.add_argument("model", metavar="MODEL.py[:NAME]", help=MODEL_HELP)


def add_graph_choice(p: argparse.ArgumentParser, backward_help: str) -> None:
    """``--backward``, ``--simplified | --raw`` and ``--wrt`` (graph and explain number nodes alike)."""
    p.add_argument("--backward", action="store_true", help=backward_help)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--simplified", dest="raw", action="store_false", help="after simplification (default)")
    g.add_argument("--raw", dest="raw", action="store_true", help="as built, before simplification")
    p.add_argument("--wrt", metavar="A,B", help="with --backward: gradients w.r.t. these leaves")
    p.set_defaults(raw=False)


def chosen_graph(a: argparse.Namespace) -> tuple[Model, list, list]:
    """(model, outputs, forward outputs) for ``graph``/``explain``'s MODEL, --backward, --raw and --wrt."""
    m = load_model(a.model)
    if a.backward:
        require_scalar(m, "--backward (the gradient graph)")
    wrt = select_wrt(m, a.wrt) if a.backward else []
    outs, fwd = build_outputs(m, wrt, a.backward, not a.raw)
    return m, outs, fwd
