"""Discovery through concatenations: concatenated branches are offered for pruning, channel by
channel; a zero-padding shortcut, which no index mapping describes, stays refused with its reason."""

import pytest
import torch

from autocompress.spaces.layers import discover
from autocompress.spaces.space import SearchSpace
from tests.conftest import run_cli
from tests.fixtures.concat_tasks import PaddedShortcutNet, two_branch


def test_concatenated_branches_are_groups_and_a_sum_with_a_wider_tensor_is_one_group():
    task = two_branch()
    info = discover(task.teacher, task.example_inputs)
    assert [(g.name, g.members, g.channels) for g in info.groups] == [
        ("stem.0", ("stem.0",), 12), ("left.0", ("left.0",), 8), ("right.0", ("right.0",), 4),
        # wide (10) and narrow (6) are concatenated and added to mix's 16 channels: one group of 16
        ("mix.0", ("mix.0", "wide.0", "narrow.0"), 16)]
    assert {layer.name: layer.group for layer in info.layers}["narrow.0"] == "mix.0"
    assert set(info.not_compressible) == {"fc (outputs)"}
    assert {"prune/left.0", "prune/right.0", "prune/mix.0"} <= set(SearchSpace(info).param_names())


def test_a_zero_padding_shortcut_stays_refused_and_says_why():
    info = discover(PaddedShortcutNet().eval(), torch.rand(1, 1, 8, 8))
    assert [g.name for g in info.groups] == ["conv1.0"]
    why = info.not_compressible["conv2 (outputs)"]
    assert "zero-padding of channels" in why and "stem.0" in why and "other widths" in why
    assert {layer.name: layer.group for layer in info.layers}["stem.0"] is None


def test_a_spatial_padding_is_not_named_as_the_cause():
    from autocompress.spaces.layers import _pads_channels

    x = torch.rand(1, 2, 3, 3, requires_grad=True)
    assert _pads_channels(torch.nn.functional.pad(x, (0, 0, 0, 0, 1, 1)).grad_fn)
    assert not _pads_channels(torch.nn.functional.pad(x, (1, 1, 1, 1)).grad_fn)
    assert not _pads_channels(torch.relu(x).grad_fn)


@pytest.mark.slow
def test_inspect_shows_concatenated_groups_and_the_padded_refusal():
    proc = run_cli("inspect", "--task", "tests.fixtures.concat_tasks:two_branch")
    assert proc.returncode == 0, proc.stderr
    assert "16 channels mix.0, wide.0, narrow.0" in proc.stdout and "prune/mix.0" in proc.stdout
    proc = run_cli("inspect", "--task", "tests.fixtures.concat_tasks:padded_shortcut")
    assert proc.returncode == 0, proc.stderr
    line = next(line for line in proc.stdout.splitlines() if line.strip().startswith("conv2 (outputs)"))
    assert "not pruned" in line and "zero-padding of channels" in line
    assert "prune/stem.0" not in proc.stdout and "prune/conv2" not in proc.stdout
