"""A checkpoint that does not load, lacks its keys or does not fit the experiment's model is an error
naming the file and the fix; a full disk while writing one names the file (not torch's inline_container)."""

from __future__ import annotations

import errno
import io
from pathlib import Path

import pytest
import torch

from lth_audit.backend import checkpoints
from lth_audit.backend.checkpoints import Checkpoints
from lth_audit.backend.experiment import parse_experiment
from lth_audit.backend.steps import Steps
from lth_audit.cli import main
from lth_audit.records import InputError

from .cases import EXPERIMENT

MODEL = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 2))
GOOD = {k: v.detach().clone() for k, v in MODEL.state_dict().items()}


def _bytes(obj) -> bytes:
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


BAD_FILES = {  # what the file holds -> what the error says
    "truncated": (_bytes(GOOD)[:200], "failed reading zip archive"),
    "empty": (b"", "empty, cut short or not a torch file"),
    "text": (b"hello world\n", "empty, cut short or not a torch file"),
    "a list": (_bytes([1, 2, 3]), "holds a list, not a {name: tensor} state dict or mask"),
    "a key short": (_bytes({k: v for k, v in GOOD.items() if k != "1.bias"}), "lacks 1 of the 4 tensors the "
                                                                             "experiment needs (1.bias)"),
    "a wrong shape": (_bytes({**GOOD, "0.weight": torch.zeros(5, 4)}), "0.weight has shape [5, 4] where the "
                                                                        "experiment's model has [3, 4]"),
}


@pytest.mark.parametrize("content,says", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_a_bad_checkpoint_names_the_file_and_the_fix(tmp_path, content, says):
    ck = Checkpoints(tmp_path, MODEL)
    path = tmp_path / ck.init(0)
    path.parent.mkdir(parents=True)
    path.write_bytes(content)
    with pytest.raises(InputError) as exc:
        ck.load(ck.init(0))
    (p,) = exc.value.problems
    assert p.path == str(path) and says in p.reason
    assert "delete it and run again" in p.reason


def test_a_good_checkpoint_loads(tmp_path):
    ck = Checkpoints(tmp_path, MODEL)
    ck.save(ck.init(0), GOOD)
    assert all(torch.equal(ck.load(ck.init(0))[k], v) for k, v in GOOD.items())


def _experiment(folder: Path, **extra: str):
    text = EXPERIMENT + "".join(f"{k}: {v}\n" for k, v in extra.items())
    return parse_experiment(text, str(folder / "e.yaml"))


def _steps_in(folder: Path, exp) -> Steps:
    """`exp`'s steps reading the checkpoint folder `folder` (another configuration's: copied by hand)."""
    steps = Steps(exp)
    steps.ck.root = folder
    return steps


def test_a_changed_configuration_gets_a_checkpoint_folder_of_its_own(tmp_path):
    a, b = _experiment(tmp_path), _experiment(tmp_path, width="0.5")
    Steps(a).theta0(0)
    Steps(b).theta0(0)   # no mismatch: width 0.5 never reads width 1.0's θ0
    assert a.ckpt_dir != b.ckpt_dir and (a.ckpt_dir / "init" / "seed0.pt").is_file()
    assert (b.ckpt_dir / "init" / "seed0.pt").is_file()


def test_a_shape_mismatch_says_which_experiment_field_changed(tmp_path):
    a = _experiment(tmp_path)
    Steps(a).theta0(0)   # writes init/seed0.pt and model.json
    with pytest.raises(InputError) as exc:
        _steps_in(a.ckpt_dir, _experiment(tmp_path, width="0.5")).theta0(0)
    (p,) = exc.value.problems
    assert p.path == str(a.ckpt_dir / "init" / "seed0.pt")
    assert "where the experiment's model has [50, 40]" in p.reason
    assert "`width` changed from 1.0 to 0.5" in p.reason and "new `out:`" in p.reason


def test_a_mask_of_other_layers_says_ignore_changed(tmp_path):
    steps = Steps(_experiment(tmp_path))
    steps.ck.save(steps.ck.mask("k"), {n: torch.ones(1) for n in ("fc1.weight",)})
    with pytest.raises(InputError) as exc:
        _steps_in(steps.ck.root, _experiment(tmp_path, ignore="[fc1]")).ck.load(steps.ck.mask("k"))
    assert "`ignore` changed from ['fc'] to ['fc1']" in exc.value.problems[0].reason


def test_run_with_a_truncated_checkpoint_exits_2_naming_it(tmp_path, capsys):
    exp = tmp_path / "e.yaml"
    exp.write_text(EXPERIMENT)
    seed0 = _experiment(tmp_path).ckpt_dir / "init" / "seed0.pt"
    seed0.parent.mkdir(parents=True)
    seed0.write_bytes(_bytes(GOOD)[:100])
    assert main(["run", str(exp), "--quiet", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {seed0}: checkpoint cannot be loaded") and err.count("\n") == 1
    assert "Traceback" not in err


class _FullDisk(io.RawIOBase):
    """A file that takes `room` bytes and then fails like a full disk."""

    def __init__(self, room: int):
        self.room = room

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        if len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.room -= len(data)
        return len(data)


def test_a_full_disk_while_saving_is_an_oserror_naming_the_file(tmp_path, monkeypatch):
    def full(path, write):
        write(_FullDisk(100))

    monkeypatch.setattr(checkpoints, "atomic_write", full)
    ck = Checkpoints(tmp_path)
    with pytest.raises(OSError) as exc:
        ck.save(ck.init(0), GOOD)
    assert exc.value.errno == errno.ENOSPC and exc.value.filename == str(tmp_path / "init" / "seed0.pt")
