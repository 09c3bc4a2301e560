"""Torch-Pruning's dependency graph, built and walked so that a model it cannot handle loses
pruning (for the part it cannot handle, with the reason) rather than the whole run.

Torch-Pruning fails on some architectures people use: building the graph can raise (a channel
shuffle's reshape, GPT-2's fused q/k/v split), and walking one group's index mapping through
chains of reshapes can run for minutes and take gigabytes (a Swin transformer's windows). Here
the graph is built under ``try``, every group is walked under a time limit of its own
(``GROUP_SECONDS``) and all of them together under ``GRAPH_SECONDS``; what fails or runs over is
refused with its reason, and everything else stays prunable.

Example:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    >>> graph, why = build_graph(net, torch.randn(1, 4))
    >>> groups, refused = walk_groups(graph, ignored=[net[2]], root_types=(nn.Linear,))
    >>> len(groups), refused
    (1, {})
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
import time

import torch_pruning as tp
from torch import nn

from autocompress.model_io import Inputs, output_tensor
from autocompress.spaces.recurrent_units import RECURRENT_PRUNERS
from autocompress.task import one_line

GROUP_SECONDS = 2.0  # one group's walk through Torch-Pruning's index mapping
GRAPH_SECONDS = 30.0  # all groups' walks together


class TooSlow(Exception):
    """Raised into a thread whose ``time_limit`` ran out."""


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise TooSlow in this thread if the block runs longer than ``seconds``. It interrupts
    Python code (Torch-Pruning's index mapping is Python), not a single long C call."""
    thread, done, lock, fired = threading.get_ident(), threading.Event(), threading.Lock(), []

    def watch():
        if not done.wait(seconds):
            with lock:
                if not done.is_set():
                    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread), ctypes.py_object(TooSlow))
                    fired.append(True)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        with lock:
            done.set()
            if fired:  # not delivered yet (the block ended first): take it back
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread), None)
        watcher.join()


def build_graph(model: nn.Module, example_inputs: Inputs) -> tuple[tp.DependencyGraph | None, str]:
    """Torch-Pruning's dependency graph of ``model``, or (None, why it could not be built)."""
    try:
        with time_limit(GRAPH_SECONDS):
            graph = tp.DependencyGraph().build_dependency(model, example_inputs=example_inputs,
                                                          output_transform=output_tensor, verbose=False,
                                                          customized_pruners=dict(RECURRENT_PRUNERS))
        return graph, ""
    except (Exception, TooSlow) as exc:
        what = f"took longer than {GRAPH_SECONDS:.0f} s" if isinstance(exc, TooSlow) else \
            f"failed ({type(exc).__name__}: {one_line(exc)[:160]})"
        return None, (f"not pruned: Torch-Pruning's dependency graph of this model {what}; quantization, "
                      "low-rank and the student still apply")


def walk_groups(graph: tp.DependencyGraph, *, ignored: list[nn.Module], root_types: tuple,
                roots: set[nn.Module] | None = None) -> tuple[list[tp.Group], dict[nn.Module, str]]:
    """Every group of coupled output channels (Torch-Pruning's ``get_all_groups``, one root layer
    at a time), and {root layer: why its group was refused} for walks that failed or ran over.
    ``roots``: walk only the groups of these layers (a candidate's pruning walks the groups it
    prunes, not again those discovery found too slow)."""
    ignored = list(ignored) + list(graph.IGNORED_LAYERS_IN_TRACING)
    visited, groups, refused = set(), [], {}
    deadline = time.monotonic() + GRAPH_SECONDS
    for module in list(graph.module2node):
        if module in visited or not isinstance(module, root_types) or any(module is m for m in ignored) or (
                roots is not None and module not in roots):
            continue
        pruner = graph.get_pruner_of_module(module)
        channels = None if pruner is None else pruner.get_out_channels(module)
        if channels is None:
            continue
        left = deadline - time.monotonic()
        if left <= 0:
            refused[module] = (f"not pruned: walking the model's channel dependencies took more than "
                               f"{GRAPH_SECONDS:.0f} s before this layer's turn")
            continue
        try:
            with time_limit(min(GROUP_SECONDS, left)):
                group = graph.get_pruning_group(module, pruner.prune_out_channels, list(range(channels)))
        except TooSlow:
            refused[module] = (f"not pruned: Torch-Pruning's index mapping of this layer's channels ran over "
                               f"{GROUP_SECONDS:.0f} s (reshapes it expands channel by channel)")
            visited.add(module)
            continue
        except Exception as exc:  # Torch-Pruning's own failure on this group
            refused[module] = f"not pruned: Torch-Pruning failed on its channels ({type(exc).__name__}: " \
                              f"{one_line(exc)[:120]})"
            visited.add(module)
            continue
        outputs = [dep.target.module for dep, _ in group if graph.is_out_channel_pruning_fn(dep.handler)]
        visited.update(outputs)
        if not any(m is o for o in outputs for m in ignored):
            groups.append(group)
    return groups, refused
