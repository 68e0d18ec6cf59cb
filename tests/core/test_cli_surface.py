"""The CLI's surface: --version, a description for every command, exit codes in help, the [train] line."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys

import pytest

from lth_audit import __version__
from lth_audit.cli import main, parser
from lth_audit.exitcodes import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK

TRAINING = {"run": ["run", "x.yaml"], "plan": ["plan", "x.yaml"], "models": ["models"], "demo": ["demo"],
            "landscape": ["landscape", "x.yaml", "-o", "x.png"]}


def _commands(ap: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    out = {}
    for action in ap._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                out[name] = sub
                out.update({f"{name} {k}": v for k, v in _commands(sub).items()})
    return out


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"lth-audit {__version__}"


def test_every_command_has_a_summary_and_a_description():
    commands = _commands(parser())
    assert {"audit", "validate", "claims", "import", "import openlth", *TRAINING} <= set(commands)
    for name, sub in commands.items():
        assert sub.description and len(sub.description) > 40, name


def test_audit_help_states_the_exit_codes(capsys):
    with pytest.raises(SystemExit):
        main(["audit", "--help"])
    text = capsys.readouterr().out
    for code in (EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED):
        assert f"\n  {code:<4}" in text
    assert "a claim failed" in text


@pytest.mark.parametrize("command", sorted(TRAINING))
def test_training_commands_without_torch_exit_2_saying_how_to_install(command, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    assert main(TRAINING[command]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert 'pip install "lth-audit[train]"' in err and "missing: torch" in err


def test_models_prints_a_header_and_exact_counts(capsys):
    pytest.importorskip("torch")
    assert main(["models", "--dataset", "mnist1d"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["arch", "params", "dataset"]
    assert any(line.split()[:2] == ["mlp", "15,210"] for line in lines[1:])


def test_the_audit_side_imports_no_torch():
    code = ("import sys, lth_audit, lth_audit.cli, lth_audit.plugin, lth_audit.store, lth_audit.scaffold, "
            "lth_audit.importers.openlth, lth_audit.session; from lth_audit import RecordWriter, load_records; "
            "lth_audit.cli.parser(); print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('torch', 'torchvision', 'tqdm', 'mnist1d')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
