"""An mmengine model that distils a frozen teacher into a trainable mmseg student.

The tensors a method needs are recorded with forward hooks on
``decode_head.conv_seg`` (its input is the decode feature, its output the logits)
rather than by editing mmseg's models. The student's own losses (decode CE,
auxiliary CE) come from ``student.loss``; the method adds its named terms; mmengine
sums every ``loss_*`` item. Methods with a discriminator get a second optimiser
(see :class:`DistillerOptimWrapperConstructor`) and a discriminator step after each
student step.
"""
from __future__ import annotations

import copy

import torch
from mmengine.model import BaseModel, is_model_wrapper
from mmengine.optim import OptimWrapperDict
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS, OPTIMIZERS
from mmseg.registry import MODELS
from torch import Tensor, nn

from ..weights import load_into
from . import term_balance
from .losses import Recorded, build_method


class HeadRecorder:
    """Keeps the last input and output of a module (``decode_head.conv_seg``)."""

    def __init__(self, module: nn.Module) -> None:
        self.features: Tensor | None = None
        self.logits: Tensor | None = None
        self.handle = module.register_forward_hook(self._hook)

    def _hook(self, module, inputs, output) -> None:
        self.features, self.logits = inputs[0], output

    def take(self, with_features: bool) -> Recorded:
        # fp32 whatever the forward's precision: the losses compute in fp32.
        rec = Recorded(logits=self.logits.float(), features=self.features.float() if with_features else None)
        self.features = self.logits = None
        return rec


@MODELS.register_module()
class SegDistiller(BaseModel):
    """Student + frozen teacher + one distillation method.

    Args:
        student: mmseg segmentor config (trained).
        teacher: mmseg segmentor config (frozen, eval mode, no grad).
        teacher_checkpoint: path of the teacher's weights (read with weights_only=True).
        method: name in :data:`bpkd.distill.losses.METHODS`.
        method_params: the method's params group from params.yaml.
        balance_interval: measure the loss terms' gradient balance every this many
            iterations (:mod:`bpkd.distill.term_balance`; params.yaml's
            ``profiles.<profile>.term_balance.interval``); 0: never.
    """

    def __init__(self, student: dict, teacher: dict, teacher_checkpoint: str | None, method: str,
                 method_params: dict, balance_interval: int = 0, init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.balance_interval = balance_interval
        self.student = MODELS.build(copy.deepcopy(student))
        # The student's preprocessor normalises and pads exactly as in baseline training.
        self.data_preprocessor = self.student.data_preprocessor
        self.teacher = MODELS.build(copy.deepcopy(teacher))
        if teacher_checkpoint:
            load_into(self.teacher, teacher_checkpoint)
        self.teacher.eval()
        self.teacher.requires_grad_(False)
        head_s, head_t = self.student.decode_head, self.teacher.decode_head
        self.method = build_method(method, method_params, num_classes=head_s.num_classes,
                                   student_channels=head_s.conv_seg.in_channels,
                                   teacher_channels=head_t.conv_seg.in_channels,
                                   ignore_index=head_s.ignore_index)
        self._rec_s = HeadRecorder(head_s.conv_seg)
        self._rec_t = HeadRecorder(head_t.conv_seg)
        # Teacher weights are an input, not training state: keep them out of checkpoints.
        self._register_state_dict_hook(_drop_teacher_keys)

    def init_weights(self) -> None:
        # Only the student (and the method's parts) are initialised; the teacher keeps
        # the loaded checkpoint.
        student = self.student.module if is_model_wrapper(self.student) else self.student
        student.init_weights()

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()  # BN statistics and dropout of the teacher stay frozen
        return self

    def forward(self, inputs: Tensor, data_samples=None, mode: str = "tensor"):
        return self.student(inputs, data_samples, mode=mode)

    def train_step(self, data, optim_wrapper):
        data = self.data_preprocessor(data, True)
        inputs, data_samples = data["inputs"], data["data_samples"]
        student_opt = optim_wrapper["student"] if isinstance(optim_wrapper, OptimWrapperDict) else optim_wrapper
        # Under MMSeparateDistributedDataParallel, student and method are DDP-wrapped:
        # call them (DDP's forward all-reduces gradients), read attributes via .module.
        method = self.method.module if is_model_wrapper(self.method) else self.method
        uses_features = method.uses_features
        # Both forwards inside the student wrapper's context: under mixed precision
        # (bpkd.training.amp) the teacher is autocast too. The recorded logits and
        # features are fp32 copies (HeadRecorder.take), and every method loss runs in fp32.
        with student_opt.optim_context(self):
            with torch.no_grad():
                self.teacher._forward(inputs)
            teacher = self._rec_t.take(uses_features)
            losses = self.student(inputs, data_samples, mode="loss")
            student = self._rec_s.take(uses_features)
            labels = torch.stack([s.gt_sem_seg.data.squeeze(0) for s in data_samples]).long()
            method_losses = self.method(student, teacher, labels)
            losses.update(method_losses)
        self._log_term_balance(losses, list(method_losses), student_opt)
        parsed, log_vars = self.parse_losses(losses)
        student_opt.update_params(parsed)
        if method.discriminator is not None:
            d_opt = optim_wrapper["discriminator"]
            with d_opt.optim_context(method.discriminator):
                d_losses = method.discriminator_loss(student.logits.detach(), teacher.logits)
            d_parsed, d_log = self.parse_losses(d_losses)
            d_opt.update_params(d_parsed)
            log_vars.update({k: v for k, v in d_log.items() if k != "loss"})
        return log_vars


    def _log_term_balance(self, losses: dict, method_keys: list[str], student_opt) -> None:
        """Every ``balance_interval`` steps: each term's gradient norm relative to the
        CE's (:mod:`bpkd.distill.term_balance`), to the step log at this step."""
        from mmengine.logging import MessageHub

        iteration = MessageHub.get_current_instance().get_info("iter", 0)
        if not term_balance.due(iteration, self.balance_interval):
            return
        scaler = getattr(student_opt, "loss_scaler", None)  # fp16: measure at the run's loss scale
        scale = float(scaler.get_scale()) if scaler is not None and hasattr(scaler, "get_scale") else 1.0
        params = [p for p in self.student.parameters() if p.requires_grad]
        values = term_balance.ratios(losses, params, method_keys, scale)
        from mmengine.visualization import Visualizer

        # mmengine logs iteration i as step i + 1 (LoggerHook); the same step here.
        Visualizer.get_current_instance().add_scalars(values, step=iteration + 1)


def _drop_teacher_keys(module, state_dict, prefix, local_metadata):
    for key in [k for k in state_dict if k.startswith(prefix + "teacher.")]:
        del state_dict[key]
    return state_dict


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class DistillerOptimWrapperConstructor:
    """Two optimisers for adversarial methods: ``student`` (the student and the
    method's other trainable parts, e.g. projection heads) and ``discriminator``.

    Config: ``dict(constructor='DistillerOptimWrapperConstructor', student=dict(
    type='OptimWrapper', optimizer=...), discriminator=dict(type='OptimWrapper',
    optimizer=...))``.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg=None) -> None:
        self.cfg = copy.deepcopy(dict(optim_wrapper_cfg))
        self.cfg.pop("constructor", None)

    def __call__(self, model: nn.Module) -> OptimWrapperDict:
        model = model.module if is_model_wrapper(model) else model
        disc = model.method.discriminator
        disc_ids = {id(p) for p in disc.parameters()}
        student_params = [p for n, p in model.named_parameters()
                          if p.requires_grad and id(p) not in disc_ids and not n.startswith("teacher.")]
        wrappers = {}
        for name, params in (("student", student_params), ("discriminator", list(disc.parameters()))):
            cfg = copy.deepcopy(self.cfg[name])
            optimizer = OPTIMIZERS.build(dict(cfg.pop("optimizer"), params=params))
            cfg.setdefault("type", "OptimWrapper")
            wrappers[name] = OPTIM_WRAPPERS.build(dict(cfg, optimizer=optimizer))
        return OptimWrapperDict(**wrappers)
