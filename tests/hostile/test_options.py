"""Bad option values are usage errors naming the option: argparse's exit 2 for `lth-audit`, pytest's own
usage-error status 4 for the plugin's `--lth-*` options; never a pydantic traceback."""

from __future__ import annotations

import pytest

from lth_audit.cli import main

from .cases import jackpot

BAD = [
    ("--similar", "-1", "must be greater than or equal to 0"),
    ("--gap", "nan", "must be a finite number"),
    ("--gap", "inf", "must be a finite number"),
    ("--gap", "lots", "expected a number, got 'lots'"),
    ("--sufficient-epochs", "0", "greater than or equal to 1"),
    ("--sufficient-epochs", "1.5", "expected an integer"),
    ("--min-sparsity", "1", "less than 1"),
    ("--band-se", "-0.5", "greater than or equal to 0"),
    ("--max-files", "0", "must be at least 1"),
    ("--max-store-bytes", "lots", "expected a size"),
]


@pytest.mark.parametrize("option,value,says", BAD, ids=[f"{o}={v}" for o, v, _ in BAD])
def test_cli_rejects_a_bad_value_naming_the_option(tmp_path, capsys, option, value, says):
    claim, _ = jackpot(tmp_path)
    with pytest.raises(SystemExit) as exc:
        main(["audit", str(claim), f"{option}={value}"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: " in err and says in err and "Traceback" not in err


def test_cli_accepts_good_values_and_sizes_with_units(tmp_path, capsys):
    claim, _ = jackpot(tmp_path)
    assert main(["audit", str(claim), "--similar", "0.5", "--gap", "0", "--max-files", "3",
                 "--max-store-bytes", "1M"]) == 0
    assert main(["audit", str(claim), "--max-store-bytes", "1K"]) == 2
    assert "larger than 1,024 bytes (raise the limit with --max-store-bytes" in capsys.readouterr().err


@pytest.mark.parametrize("option,value,says", BAD[:3], ids=[f"{o}={v}" for o, v, _ in BAD[:3]])
def test_plugin_rejects_a_bad_value_with_pytest_usage_error(pytester, option, value, says):
    jackpot(pytester.path)
    flag = "--lth-" + option.removeprefix("--")
    result = pytester.runpytest(f"{flag}={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR  # 4
    result.stderr.fnmatch_lines([f"*argument {flag}: *{says}*, got '{value}'"])
