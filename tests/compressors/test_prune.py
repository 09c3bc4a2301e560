import pytest
import torch
from torch import nn

from autocompress import LayerPlan, Plan
from autocompress.compressors import DistillConfig, compress
from autocompress.compressors.prune import prune_groups


def test_residual_coupled_layers_are_pruned_together(digits_task):
    model = compress(digits_task, Plan(layers={"stem.0": LayerPlan(prune=0.5)}), config=DistillConfig(steps=0)).model
    modules = dict(model.named_modules())
    assert modules["stem.0"].out_channels == 16
    assert modules["stage1.0.conv2"].out_channels == 16 and modules["stage1.1.conv2"].out_channels == 16
    assert modules["stage1.0.conv1"].in_channels == 16  # consumers shrink too
    assert modules["stage1.0.conv1"].out_channels == 32  # other groups untouched


def test_width_multiplies_every_group(digits_task):
    model = compress(digits_task, Plan(width=0.5, layers={"down.0": LayerPlan(prune=0.5)}),
                     config=DistillConfig(steps=0)).model
    modules = dict(model.named_modules())
    assert modules["stage1.0.conv1"].out_channels == 16
    assert modules["down.0"].out_channels == 16  # 64 * 0.5 * (1 - 0.5)
    assert modules["fc"].out_features == 10


def test_magnitude_importance_removes_the_smallest_channels():
    net = nn.Sequential(nn.Linear(3, 4, bias=False), nn.ReLU(), nn.Linear(4, 2))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, 1, 1], [0.1, 0.1, 0.1], [2, 2, 2], [0.01, 0, 0]]))
    kept_rows = net[0].weight[[0, 2]].clone()
    prune_groups(net, torch.randn(1, 3), keep={"0": 0.5}, head="2", importance="l1")
    assert torch.equal(net[0].weight, kept_rows) and net[2].in_features == 2


def test_taylor_importance_uses_gradients(digits_task):
    x, y = digits_task.train.tensors[0][:64], digits_task.train.tensors[1][:64]
    import copy
    model = copy.deepcopy(digits_task.teacher)
    changed = prune_groups(model, digits_task.example_inputs, keep={"stage2.0.conv1": 0.25}, head="fc",
                           importance="taylor", batch=(x, y))
    assert changed == {"stage2.0.conv1": (64, 16)}
    assert all(p.grad is None for p in model.parameters())


def test_pruning_removes_exactly_the_channels_of_the_group_discovery_found(digits_task):
    """Discovery and pruning share one dependency walk: every group discovery reports, pruned by
    its name, shrinks exactly its members, and no other layer's outputs."""
    import copy

    from autocompress.spaces.layers import discover

    info = discover(copy.deepcopy(digits_task.teacher), digits_task.example_inputs, blocks=digits_task.blocks)
    group_of = {member: g.name for g in info.groups for member in g.members}
    for group in info.groups:
        model = copy.deepcopy(digits_task.teacher)
        before = {n: m.weight.shape[0] for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
        changed = prune_groups(model, digits_task.example_inputs, keep={group.name: 0.5}, head=info.head,
                               group_of=group_of)
        after = {n: m.weight.shape[0] for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
        assert changed == {group.name: (group.channels, group.channels // 2)}
        assert {n for n in before if after[n] != before[n]} == set(group.members)


def test_a_grouped_convolution_loses_the_same_positions_in_every_group():
    """RegNet/ResNeXt: the 1x1 conv feeding a grouped 3x3 conv, and the grouped conv's own outputs,
    are pruned a stripe at a time (one position in each of its groups): the groups stay equal."""
    from autocompress.spaces.layers import discover

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1, groups=4), nn.ReLU(),
                        nn.Conv2d(16, 8, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2)).eval()
    x = torch.randn(1, 3, 8, 8)
    groups = {g.name: g for g in discover(net, x).groups}
    assert (groups["0"].stripes, groups["2"].stripes, groups["4"].stripes) == (4, 4, 1)
    before = net[0].weight.detach().clone()
    changed = prune_groups(net, x, keep={"0": 0.5, "2": 0.75}, head="7")
    assert changed == {"0": (16, 8), "2": (16, 12)}
    assert net[2].groups == 4 and tuple(net[2].weight.shape) == (12, 2, 3, 3) and net[4].in_channels == 12
    kept = [i for i in range(16) if any(torch.equal(before[i], w) for w in net[0].weight.detach())]
    positions = [{i % 4 for i in kept if i // 4 == chunk} for chunk in range(4)]
    assert len(kept) == 8 and all(p == positions[0] for p in positions) and len(positions[0]) == 2
    assert net(x).shape == (1, 2)


class _Tagger(nn.Module):
    """Tokens -> embedding -> stacked bidirectional recurrent layer -> per-token Linear, mean."""

    def __init__(self, cell):
        super().__init__()
        self.embed = nn.Embedding(30, 8)
        self.rnn = cell(8, 12, num_layers=2, bidirectional=True, batch_first=True)
        self.head = nn.Linear(24, 3)

    def forward(self, ids):
        return self.head(self.rnn(self.embed(ids))[0]).mean(1)


@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU, nn.RNN])
def test_recurrent_hidden_units_are_pruned_in_every_layer_and_direction_and_exported(cell, tmp_path):
    from autocompress import Task
    from autocompress.evaluators import export_artifact
    from autocompress.evaluators.measure import onnx_logits, onnx_session

    torch.manual_seed(0)
    ids = torch.randint(0, 30, (32, 7))
    data = torch.utils.data.TensorDataset(ids, torch.arange(32) % 3)
    task = Task(name="tagger", teacher=_Tagger(cell).eval(), train=data, val=data, test=data, example_inputs=ids[:1])
    result = compress(task, Plan(layers={"rnn": LayerPlan(prune=0.5, bits=8)}), config=DistillConfig(steps=0))
    rnn = result.model.rnn.layer if hasattr(result.model.rnn, "layer") else result.model.rnn
    assert rnn.hidden_size == 6 and result.model.head.in_features == 12
    assert rnn.weight_ih_l1_reverse.shape[1] == 12 and rnn.weight_hh_l1.shape[1] == 6
    path = str(tmp_path / "m.onnx")
    export_artifact(result, task.example_inputs, path)
    got, _ = onnx_logits(onnx_session(path), data)
    with torch.no_grad():
        expected = result.model.eval()(ids).numpy()
    assert abs(got - expected).max() < 1e-4
