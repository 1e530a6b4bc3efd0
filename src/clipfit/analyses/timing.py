"""Step time of methods side by side (LLU Figure 3, CLIPFit Table 7's time per image): each method trained for a few
steps at each batch size on the same images, in this one process, timing forward, backward and update."""
from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from typing import Any

import torch

from ..backbone import Backbone
from ..config import TrainConfig
from ..data.catalogue import load_task
from ..engine.loop import FeatureSource, ImageSource, cached_features, forward_step, make_optimizer, pick_device
from ..method import METHODS, build_method


def measure_steps(model: str, dataset: str, root: str | None, methods: Sequence[str], batch_sizes: Sequence[int],
                  device: str | None, settings: dict[str, Any], steps: int = 3) -> list[list[Any]]:
    """[method, batch size, seconds per step, seconds per image]: each method trained for `steps` steps (after one
    untimed warm-up step) at each batch size on the same images, in this process; the median step."""
    dev = pick_device(device)
    task = load_task(dataset, root)
    backbone = Backbone.from_pretrained(model, device=dev)
    state0 = {k: v.clone() for k, v in backbone.model.state_dict().items()}
    rows = []
    for m in methods:
        for b in batch_sizes:
            backbone.model.load_state_dict(state0)
            tcfg = TrainConfig(batch_size=b, **{k: v for k, v in settings.items() if hasattr(TrainConfig, k)})
            method = build_method(m, backbone, task.classnames, task.template, METHODS.get(m).config()).to(dev)
            if method.closed_form or not method.trainable():
                continue
            torch.manual_seed(0)
            method.reset_parameters()
            method.on_train_start()
            train = (task.train * (1 + b * (steps + 1) // max(1, len(task.train))))[: b * (steps + 1)]
            small = task.with_splits(train=train, val=[])
            if method.trains_on_features:  # as the training loop does: the frozen encoder ran once, before
                feats, _ = cached_features(method, small, tcfg, 1, dev, False)
                source: Any = FeatureSource(method, feats, None, tcfg, 1, dev)
            else:
                source = ImageSource(method, small, tcfg, 1, dev)
            opt = make_optimizer(list(method.trainable().values()), tcfg)
            static = method.text_is_static
            text = method.text_features().detach() if static else None
            times = []
            method.train()
            for i, (x, y) in enumerate(source.batches()):
                x, y = x.to(dev), y.to(dev)
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                t = time.perf_counter()
                step = forward_step(method, source.image_features, x, y, text, dev, tcfg.precision)
                step.loss, _ = method.loss(step)
                opt.zero_grad(set_to_none=True)
                method.backward(step)
                opt.step()
                if dev.type == "cuda":
                    torch.cuda.synchronize()
                if i:  # the first step warms up
                    times.append(time.perf_counter() - t)
            if times:
                s = statistics.median(times)
                rows.append([m, b, s, s / b])
    return rows
