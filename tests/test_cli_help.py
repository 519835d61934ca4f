"""CLI help and error text: exit codes in every subcommand's --help, no literal %% in descriptions, an
unknown option answered with the subcommand's usage, "did you mean" for misspelt names in model files."""
from __future__ import annotations

import pytest

from symdiff import cli


def _help(capsys, *args) -> str:
    with pytest.raises(SystemExit) as e:
        cli.main([*args, "--help"])
    assert e.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", ["compile", "check", "graph", "explain"])
def test_each_subcommand_help_lists_its_exit_codes_and_has_no_double_percent(capsys, command):
    out = _help(capsys, command)
    assert "%%" not in out
    assert "exit status:\n  0  success\n" in out
    for code in cli.EXIT_CODES[command]:
        assert f"  {code}  {cli.EXIT_MEANINGS[code]}" in out
    if command == "check":
        assert "1  a gradient disagrees" in out


def test_graph_and_explain_descriptions_show_single_percent(capsys):
    assert "ids %k as used" in _help(capsys, "graph")
    assert "elementwise node %N" in _help(capsys, "explain")


def test_unknown_option_shows_the_subcommand_usage(tmp_path, capsys):
    m = tmp_path / "m.py"
    m.write_text("import symdiff as sd\nloss = sd.sum(sd.input('x', (2,)))\n")
    with pytest.raises(SystemExit) as e:
        cli.main(["compile", str(m), "--bogus"])
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert err.startswith("usage: symdiff compile ") and "unrecognized arguments: --bogus" in err


@pytest.mark.parametrize("source,hint", [
    ("loss = sd.sum(sd.tahn(x))", "(did you mean sd.tan or sd.tanh"),
    ("loss = sd.sum(sd.tanhh(x))", "(did you mean sd.tanh"),
    ("loss = sd.sum(sd.nn.Linaer(4, 1)(x))", "(did you mean nn.Linear"),
    ("logits = x\nloss = sd.sum(logit)", "(did you mean logits"),
])
def test_misspelt_names_get_a_suggestion(tmp_path, capsys, source, hint):
    m = tmp_path / "m.py"
    m.write_text("import symdiff as sd\nx = sd.input('x', (1, 1, 4, 4))\n" + source + "\n")
    rc = cli.main(["check", str(m)])
    err = capsys.readouterr().err
    assert rc == 2 and hint in err, err
