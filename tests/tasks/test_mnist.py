"""mnist-lenet5's data: checked files, named when missing, official test split kept apart."""

import shutil
from pathlib import Path

import pytest

from autocompress.task import UsageError
from autocompress.tasks.mnist import FILES, LeNet5, mnist_splits
from tests.conftest import ROOT, run_cli

SHARED = ROOT.parent / "shared" / "data"
needs_data = pytest.mark.skipif(not (SHARED / "mnist").is_dir(), reason="../shared/data/mnist is not here")


@pytest.mark.slow
def test_missing_files_are_named_in_one_line(tmp_path):
    proc = run_cli("inspect", "--task", "mnist-lenet5", "--data-dir", str(tmp_path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert all(name in proc.stderr for name in FILES) and "--data-dir" in proc.stderr


@needs_data
def test_a_file_that_is_not_the_original_is_refused(tmp_path):
    copy = tmp_path / "mnist"
    shutil.copytree(SHARED / "mnist", copy)
    labels = copy / "t10k-labels-idx1-ubyte.gz"
    labels.chmod(0o644)
    labels.write_bytes(labels.read_bytes()[:-10])  # truncated
    with pytest.raises(UsageError, match="t10k-labels-idx1-ubyte.gz does not match its SHA-256"):
        mnist_splits(tmp_path)


@needs_data
def test_splits_validation_carved_from_train_and_the_official_test_set():
    splits = mnist_splits(SHARED)  # the parent folder; the mnist/ folder itself works too
    assert [len(splits[s]) for s in ("train", "val", "test")] == [55_000, 5_000, 10_000]
    assert len(mnist_splits(SHARED / "mnist")["val"]) == 5_000
    counts = splits["val"].tensors[1].bincount()
    assert counts.min() >= 400  # stratified: every digit has its share
    logits = LeNet5()(splits["val"].tensors[0][:4])
    assert tuple(logits.shape) == (4, 10)
