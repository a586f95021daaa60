"""Checkpoint loading refuses what it cannot trust, in one line (issue 12, defects 9 and 10)."""

import pickle
import zipfile

import pytest
import torch

from restbench.api import PluginError
from restbench.plugins.registry import get_registry
from restbench.run.checkpoints import CheckpointError, load_checkpoint, save_checkpoint


@pytest.fixture()
def checkpoint(tmp_path):
    net, spec = get_registry().get("models", "sors2018").build(1200, 10.0, 5)
    path = tmp_path / "sors-seed0-abc123.pt"
    save_checkpoint(path, "sors2018", spec, net, method="sors", seed=0, key="abc123")
    return path


class Payload:
    def __reduce__(self):
        return (print, ("executed",))


def assert_one_line_refusal(exc_info, path):
    message = str(exc_info.value)
    assert "\n" not in message and str(path) in message
    assert "weights_only" not in message
    assert isinstance(exc_info.value, PluginError)


def test_good_checkpoint_loads_with_and_without_its_key(checkpoint):
    net, spec, meta = load_checkpoint(checkpoint)
    assert meta["key"] == "abc123" and meta["method"] == "sors"
    assert load_checkpoint(checkpoint, expected_key="abc123")[2] == meta


def test_pickle_with_objects_is_refused_without_weights_only_advice(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"model": "sors2018", "spec": {}, "state_dict": Payload(), "meta": "{}"}, path)
    with pytest.raises(CheckpointError, match=r"is not a restbench checkpoint or is corrupt") as err:
        load_checkpoint(path)
    assert_one_line_refusal(err, path)
    assert "executed" not in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")
@pytest.mark.parametrize("content", [b"not a checkpoint at all" * 4, b"", pickle.dumps({"a": 1})], ids=["text", "empty", "pickle"])
def test_garbage_is_refused_in_one_line(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=r"is not a restbench checkpoint or is corrupt") as err:
        load_checkpoint(path)
    assert_one_line_refusal(err, path)


def test_truncated_checkpoint_is_refused(checkpoint):
    blob = checkpoint.read_bytes()
    checkpoint.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match="is not a restbench checkpoint or is corrupt") as err:
        load_checkpoint(checkpoint)
    assert_one_line_refusal(err, checkpoint)


def test_plain_data_that_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"weight": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match="expected the keys model, spec and state_dict") as err:
        load_checkpoint(path)
    assert_one_line_refusal(err, path)


def test_wrong_state_dict_is_one_line(tmp_path, checkpoint):
    ckpt = torch.load(checkpoint, weights_only=True)
    ckpt["state_dict"] = {"bogus": torch.zeros(2)}
    path = tmp_path / "mismatch.pt"
    torch.save(ckpt, path)
    with pytest.raises(CheckpointError, match="rebuilding its model failed") as err:
        load_checkpoint(path)
    assert_one_line_refusal(err, path)


def test_checkpoint_of_another_job_is_refused(tmp_path, checkpoint):
    with pytest.raises(CheckpointError, match=r"was saved for job abc123, not for job def456") as err:
        load_checkpoint(checkpoint, expected_key="def456")
    assert_one_line_refusal(err, checkpoint)
    # a swapped file: another job's checkpoint under this job's name
    net, spec = get_registry().get("models", "sors2018").build(1200, 10.0, 5)
    swapped = tmp_path / "sors-seed0-def456.pt"
    save_checkpoint(swapped, "sors2018", spec, net, method="sors", seed=0, key="other")
    with pytest.raises(CheckpointError, match="was saved for job other, not for job def456"):
        load_checkpoint(swapped, expected_key="def456")
    # no key recorded at all
    save_checkpoint(swapped, "sors2018", spec, net, method="sors", seed=0)
    with pytest.raises(CheckpointError, match=r"saved for job \(none recorded\)"):
        load_checkpoint(swapped, expected_key="def456")


def test_missing_file_is_a_plain_plugin_error(tmp_path):
    with pytest.raises(PluginError, match="not found") as err:
        load_checkpoint(tmp_path / "nope.pt")
    assert not isinstance(err.value, CheckpointError)


def test_zip_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "archive.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("x/data.pkl", b"junk")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert_one_line_refusal(err, path)
