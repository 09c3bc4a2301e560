"""The files of one candidate's folder (``artifacts/<trial>/``, ``teacher/``, an export): the ONNX
file that was measured, the plan that made it, and the fine-tuning checkpoint a promotion
continues from. Named once, here, for the writers (evaluators) and the readers (best, report),
which import no torch.

Example:
    >>> ARTIFACT_NAME, PLAN_NAME
    ('model.onnx', 'plan.json')
"""

ARTIFACT_NAME, PLAN_NAME, CHECKPOINT_NAME = "model.onnx", "plan.json", "checkpoint.pt"
