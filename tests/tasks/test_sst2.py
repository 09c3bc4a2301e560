"""sst2-transformer's data: checked files, named when missing, official dev and test splits."""

import shutil

import pytest

from autocompress.task import UsageError
from autocompress.tasks.sst2 import FILES, MAX_TOKENS, PAD, TextEncoder, sst2_splits
from tests.conftest import ROOT, run_cli

SHARED = ROOT.parent / "shared" / "data"
needs_data = pytest.mark.skipif(not (SHARED / "sst2").is_dir(), reason="../shared/data/sst2 is not here")


@pytest.mark.slow
def test_missing_files_are_named_in_one_line(tmp_path):
    proc = run_cli("inspect", "--task", "sst2-transformer", "--data-dir", str(tmp_path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert all(name in proc.stderr for name in FILES) and "--data-dir" in proc.stderr


@needs_data
def test_a_file_that_is_not_the_original_is_refused(tmp_path):
    copy = tmp_path / "sst2"
    shutil.copytree(SHARED / "sst2", copy)
    dev = copy / "dev.tsv"
    dev.chmod(0o644)
    dev.write_text(dev.read_text().replace("\t1\n", "\t0\n", 1))  # one label flipped
    with pytest.raises(UsageError, match="dev.tsv does not match its SHA-256"):
        sst2_splits(tmp_path)


@needs_data
def test_splits_are_the_official_train_dev_and_labelled_test_sets():
    splits = sst2_splits(SHARED)
    assert [len(splits[s]) for s in ("train", "val", "test")] == [67_349, 872, 1_821]
    ids, labels = splits["test"].tensors
    assert ids.shape == (1_821, MAX_TOKENS) and set(labels.tolist()) == {0, 1}
    assert (ids[:, 0] != PAD).all()  # every sentence has words
    logits = TextEncoder()(ids[:4])
    assert tuple(logits.shape) == (4, 2)
