"""The training stages' validation loop: mmengine's ``ValLoop`` without the validation
that ``IterBasedTrainLoop`` adds at ``max_iters``.

mmengine's ``IterBasedTrainLoop`` validates every ``val_interval`` iterations *and*
at its last iteration. In this pipeline the last one is a duplicate: the stage's
``evaluate…@`` stage scores the exported checkpoint right after, on the same
validation windows with the same metric, and adds boundary and per-class scores. It
cost 110–116 s of the demo's teacher stage and 26–35 s of every student's, ~5.4 min of
the demo (docs/performance.md, "Fixed cost per stage"). The validation curves of the
plots page take their last point from ``evaluate…@`` instead (``bpkd.report.curves``).
"""
from __future__ import annotations

from mmengine.registry import LOOPS
from mmengine.runner import ValLoop
from mmengine.runner.base_loop import BaseLoop

def validates_at(iteration: int, val_interval: int, max_iters: int) -> bool:
    """Whether a training run validates after ``iteration``: every ``val_interval``
    iterations, never at ``max_iters`` (``evaluate…@`` scores that checkpoint). The resume
    logic (``training.run``) asks it which validation a checkpoint was due."""
    return iteration < max_iters and iteration % val_interval == 0


@LOOPS.register_module()
class IntervalValLoop(ValLoop):
    """``ValLoop`` that does nothing when the training loop calls it at its last iteration.

    A standalone ``Runner.val()`` (no training loop) validates as ``ValLoop`` does.
    """

    def run(self) -> dict:
        # The private attribute: Runner.train_loop would build a training loop (and its
        # dataloader) for a standalone Runner.val() whose config has one.
        train_loop = self.runner._train_loop
        if isinstance(train_loop, BaseLoop) and not validates_at(train_loop.iter, 1, train_loop.max_iters):
            return {}
        return super().run()
