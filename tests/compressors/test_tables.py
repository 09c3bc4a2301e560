import numpy as np
import onnxruntime as ort
import torch
from torch import nn

from autocompress.compressors.tables import trim_tables
from autocompress.evaluators.export import export_onnx


class BertStyle(nn.Module):
    """Positions and token types as Hugging Face BERT reads them: slices of buffers."""

    def __init__(self, shared: bool = False):
        super().__init__()
        self.tokens, self.positions, self.types = nn.Embedding(30, 8), nn.Embedding(512, 8), nn.Embedding(2, 8)
        self.register_buffer("position_ids", torch.arange(512)[None])
        self.register_buffer("type_ids", torch.zeros(1, 512, dtype=torch.long))
        self.head = nn.Linear(8, 2)
        if shared:
            self.head_positions = nn.Linear(8, 512, bias=False)
            self.head_positions.weight = self.positions.weight

    def forward(self, ids):
        length = ids.shape[1]
        x = self.tokens(ids) + self.positions(self.position_ids[:, :length]) + self.types(self.type_ids[:, :length])
        return self.head(x.mean(1))


def test_tables_read_by_buffer_slices_keep_only_the_rows_read_and_the_file_gives_the_same_outputs(tmp_path):
    model, ids = BertStyle().eval(), torch.randint(1, 30, (4, 7))
    expected = model(ids)
    teacher_file, trimmed_file = tmp_path / "teacher.onnx", tmp_path / "trimmed.onnx"
    export_onnx(model, ids[:1], str(teacher_file))
    assert trim_tables(model, ids[:1]) == {"positions": (512, 7), "types": (2, 1)}
    export_onnx(model, ids[:1], str(trimmed_file))
    assert trimmed_file.stat().st_size < teacher_file.stat().st_size - 500 * 8 * 4
    session = ort.InferenceSession(str(trimmed_file), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: ids.numpy()})[0]
    np.testing.assert_allclose(got, expected.detach().numpy(), atol=1e-6)  # every batch size, same rows


def test_a_shared_table_and_ids_that_follow_the_batch_stay_whole():
    assert trim_tables(BertStyle(shared=True).eval(), torch.randint(1, 30, (1, 7))) == {"types": (2, 1)}

    class ByBatch(nn.Module):  # reads one row per example: a bigger batch reads more rows
        def __init__(self):
            super().__init__()
            self.rows, self.head = nn.Embedding(64, 4), nn.Linear(4, 2)

        def forward(self, x):
            return self.head(x + self.rows(torch.arange(x.shape[0])))

    assert trim_tables(ByBatch().eval(), torch.randn(1, 4)) == {}
