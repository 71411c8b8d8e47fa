"""Mixed precision: ``profiles.<p>.train.amp`` (``fp32``, ``fp16``, ``bf16``) as an
mmengine optim wrapper.

mmengine switches mixed precision on through the optim wrapper: the segmentor's
``train_step`` (and :class:`~bpkd.distill.distiller.SegDistiller`'s, teacher pass
included) runs its forward inside ``optim_wrapper.optim_context``, which the AMP
wrapper turns into ``torch.autocast``. Weights and optimiser state stay fp32;
validation and evaluation run in fp32. Every distillation loss disables autocast and
computes in fp32 on fp32 copies of the recorded logits and features
(``bpkd.distill.losses``), except the matmuls of CIRKD's relation matrices, which take
the run's precision (``cirkd.similarity_logits``).

- On CUDA: mmengine's own ``AmpOptimWrapper``. ``fp16`` with dynamic loss scaling
  (``torch.cuda.amp.GradScaler``: fp16 gradients underflow without it); ``bf16``
  with the scaler disabled, because bfloat16 keeps float32's 8 exponent bits and its
  gradients do not underflow where fp16's do.
- On CPU: ``AmpOptimWrapper`` refuses to be built. Measured with mmengine 0.10.7 and
  torch 2.13.0+cpu: its constructor asserts ``is_cuda_available() or
  is_npu_available() or is_mlu_available() or is_musa_available()`` and raises
  ``AssertionError: ``AmpOptimizerWrapper`` is only available training on gpu, npu,
  mlu or musa``. PyTorch's AMP documentation trains on CPU with
  ``torch.autocast(device_type='cpu', dtype=torch.bfloat16)`` alone, no GradScaler.
  :class:`CPUBF16AmpOptimWrapper` is exactly that: mmengine's ``OptimWrapper`` (plain
  backward and step, the same checkpoint state) whose ``optim_context`` adds
  mmengine's own ``autocast(device_type='cpu', dtype=torch.bfloat16)``.
  ``fp16`` on CPU fails when the run's config is built, naming the key: mmengine's
  ``autocast`` asserts bfloat16 on CPU (``In CPU autocast, only support
  `torch.bfloat16` dtype``, measured), and fp16 would need the loss scaler that the
  refused wrapper holds.
"""
from __future__ import annotations

from contextlib import contextmanager

from mmengine.optim import OptimWrapper
from mmengine.registry import OPTIM_WRAPPERS

from ..params import AMP_MODES, ParamsError

__all__ = ["AMP_MODES", "CPUBF16AmpOptimWrapper", "optim_wrapper_config", "precision_on_this_host"]


@OPTIM_WRAPPERS.register_module()
class CPUBF16AmpOptimWrapper(OptimWrapper):
    """``OptimWrapper`` whose forward context is CPU bfloat16 autocast (no loss
    scaling: bfloat16 has float32's exponent range)."""

    @contextmanager
    def optim_context(self, model):
        import torch
        from mmengine.runner.amp import autocast

        with super().optim_context(model), autocast(device_type="cpu", dtype=torch.bfloat16):
            yield


def precision_on_this_host(amp: str, cuda: bool, key: str) -> tuple[str, str | None]:
    """The precision a run with ``amp`` trains in here, and why it differs, if it does.

    ``bf16`` on a CPU without native bfloat16 instructions (``bpkd.training.cpu_features``)
    falls back to ``fp32``: oneDNN would emulate bf16 there, slower than fp32, and the
    knob exists to make training faster. The fallback is said in the stage's log; the
    run's resolved config (and so its resume fingerprint) is the fp32 one.
    """
    if amp != "bf16" or cuda:
        return amp, None
    from .cpu_features import NATIVE_BF16_FLAGS, native_bf16

    if native_bf16():
        return amp, None
    return "fp32", (f"{key} = 'bf16' falls back to fp32: this CPU has none of the native bfloat16 "
                    f"instructions {list(NATIVE_BF16_FLAGS)} (bpkd.training.cpu_features), and emulated "
                    f"bf16 is slower than fp32")


def optim_wrapper_config(optimizer: dict, amp: str, cuda: bool, key: str) -> dict:
    """The optim wrapper config of a run with precision ``amp`` on CUDA or CPU.

    ``amp`` is one of :data:`AMP_MODES`, as ``Params`` validated it; ``key`` is its
    params key, named in the one error that depends on the hardware (fp16 without
    CUDA), which ``Params`` cannot know. ``fp32`` gives the plain ``OptimWrapper``
    config, exactly as before this knob existed.
    """
    if amp == "fp32":
        return dict(type="OptimWrapper", optimizer=optimizer)
    if cuda:
        return {"fp16": dict(type="AmpOptimWrapper", optimizer=optimizer, dtype="float16", loss_scale="dynamic"),
                "bf16": dict(type="AmpOptimWrapper", optimizer=optimizer, dtype="bfloat16",
                             loss_scale=dict(enabled=False))}[amp]
    if amp == "fp16":
        raise ParamsError(f"params.yaml: {key} = 'fp16' needs a CUDA GPU (mmengine's AmpOptimWrapper with "
                          f"loss scaling); on CPU mmengine autocasts to bfloat16 only: set {key} to 'bf16' or 'fp32'")
    return dict(type="CPUBF16AmpOptimWrapper", optimizer=optimizer)
