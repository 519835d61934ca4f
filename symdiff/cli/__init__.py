"""The ``symdiff`` command line (also ``python -m symdiff``): one module per subcommand, each with
``add_parser(sub, common)`` and ``run(args) -> exit status``; the shared model loading is in
:mod:`symdiff.cli.common`.

Commands (``symdiff COMMAND --help`` for the options)::

    symdiff compile MODEL.py[:NAME] [--target llvm|cuda|ir] [-o OUTDIR]   compile NAME and its gradients
    symdiff check   MODEL.py[:NAME] [--seed S]                             finite-difference gradient check
    symdiff graph   MODEL.py[:NAME] [--backward] [--raw] [--format F] [-o FILE]   show the graph
    symdiff explain MODEL.py[:NAME] --node N                               SymPy derivative of node %N

A model file is an ordinary Python file that builds tensors with the DSL (``import symdiff as sd``);
it is *executed*, so only run model files you trust. NAME (default ``loss``) is a module-level tensor.

Exit status: 0 success; 1 ``check`` found a gradient that disagrees; 2 usage or model error (one line
on stderr: bad option, missing file, syntax error, missing or non-scalar NAME ...); 3 an external tool
is missing (Graphviz ``dot`` or the C compiler): everything that does not need it was written, and
stderr says what is missing; 4 internal compiler error (a bug: please report it with ``--debug``).
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Optional, Sequence

from . import check as check_cmd
from . import compile as compile_cmd
from . import explain as explain_cmd
from . import graph as graph_cmd
from .common import EXIT_FAIL, EXIT_INTERNAL, EXIT_OK, EXIT_TOOL, EXIT_USAGE, ToolMissing, UsageError, load_model

COMMANDS = (compile_cmd, check_cmd, graph_cmd, explain_cmd)  # in the order `symdiff --help` lists them


def version() -> str:
    """The installed symdiff version."""
    from .. import __version__
    return __version__


class KeepLinesFormatter(argparse.HelpFormatter):
    """argparse's formatter, except that a text with line breaks (the exit-status epilog) keeps them."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        if "\n" in text:
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: global options, then one subparser per module in :data:`COMMANDS`."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show Python tracebacks for errors")
    p = argparse.ArgumentParser(prog="symdiff", description="symdiff: compile, check and inspect models written "
                                "with the symdiff DSL. Model files are Python code and are executed.",
                                epilog="exit status: 0 ok, 1 gradient check failed, 2 usage/model error, "
                                       "3 external tool (dot, gcc) missing, 4 internal error")
    p.add_argument("--version", action="version", version=f"symdiff {version()}")
    p.add_argument("--debug", action="store_true", default=False, help="show Python tracebacks for errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for cmd in COMMANDS:
        cmd.add_parser(sub, common)
    for name, sp in sub.choices.items():  # each subcommand's --help ends with the exit codes it can return
        sp.formatter_class = KeepLinesFormatter
        sp.epilog = "exit status:\n" + "\n".join(f"  {c}  {EXIT_MEANINGS[c]}" for c in EXIT_CODES[name])
    p.set_defaults(subcommands=sub.choices)  # name -> subparser (its usage for errors after parsing)
    return p


EXIT_MEANINGS = {EXIT_OK: "success", EXIT_FAIL: "a gradient disagrees with finite differences",
                 EXIT_USAGE: "usage or model error (one line on stderr)",
                 EXIT_TOOL: "an external tool (Graphviz dot, the C compiler) is missing; the rest was written",
                 EXIT_INTERNAL: "internal compiler error (a bug: rerun with --debug and report it)"}
EXIT_CODES = {"compile": (EXIT_OK, EXIT_USAGE, EXIT_TOOL, EXIT_INTERNAL),
              "check": (EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_INTERNAL),
              "graph": (EXIT_OK, EXIT_USAGE, EXIT_TOOL, EXIT_INTERNAL),
              "explain": (EXIT_OK, EXIT_USAGE, EXIT_INTERNAL)}


def silence_stdout() -> None:
    """After a broken pipe (``symdiff graph ... | head``): no error from the flush at exit."""
    try:
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
    except OSError:
        pass


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit status (see the module docstring)."""
    parser = build_parser()
    a, extra = parser.parse_known_args(argv)
    if extra:  # an unknown option belongs to the subcommand: its usage, not the top level's
        a.subcommands[a.command].error(f"unrecognized arguments: {' '.join(extra)}")
    debug = bool(getattr(a, "debug", False))
    prog = f"symdiff {a.command}"
    try:
        return a.func(a)
    except UsageError as e:
        if debug:
            traceback.print_exc()
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except ToolMissing as e:
        print(f"{prog}: warning: {e}", file=sys.stderr)
        return EXIT_TOOL
    except KeyboardInterrupt:
        return 130
    except OSError as e:  # cannot write the output directory / file, ...
        if debug:
            traceback.print_exc()
        if isinstance(e, BrokenPipeError):
            silence_stdout()
            return EXIT_OK
        print(f"{prog}: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as e:  # noqa: BLE001 - one line, not a traceback, unless --debug
        if debug:
            traceback.print_exc()
        print(f"{prog}: internal error: {type(e).__name__}: {e}" + ("" if debug else " (rerun with --debug for the "
                                                                      "traceback)"), file=sys.stderr)
        return EXIT_INTERNAL


__all__ = ["main", "build_parser", "COMMANDS", "UsageError", "ToolMissing", "load_model",
           "EXIT_OK", "EXIT_FAIL", "EXIT_USAGE", "EXIT_TOOL", "EXIT_INTERNAL"]
