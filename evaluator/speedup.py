"""Primer's speedup metric, read off two validation-loss curves of the same budget.

Primer (So et al., 2021) defines a model's speedup over the baseline as the training compute
the baseline needs to reach its own final loss, divided by the compute the model needs to
reach that loss. Read here from curves evaluated at points of one run each (``TrainConfig.
eval_points``), with the compute axis the budget's own quantity (tokens, FLOPs or seconds).
When the model ends *worse* than the baseline the roles swap, so the metric is defined
both ways and is below 1 for a worse model:

    speedup = compute_baseline(L*) / compute_model(L*),   L* = max(final_baseline, final_model)

Intermediate points of a run lie on a learning-rate schedule that has not decayed yet, so a
model reaching L* early is credited with less than a shorter run of its own would reach: the
estimate is conservative for the better model.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

Curve = Sequence[tuple[float, float]]
"""(compute spent, validation loss) points in increasing compute; the last is the final loss."""


def compute_to_reach(curve: Curve, target: float, start_loss: float) -> float:
    """The compute at which ``curve`` first reaches ``target``, linearly interpolated, the run
    starting from ``start_loss`` at zero compute (the loss at initialisation, ≈ ln V)."""
    previous = (0.0, start_loss)
    for point in curve:
        if point[1] <= target:
            (c0, l0), (c1, l1) = previous, point
            if l0 <= target:  # reached before the first point: only at the start itself
                return c0
            return c0 + (c1 - c0) * (l0 - target) / (l0 - l1)
        previous = point
    return math.inf


def speedup(baseline: Curve, model: Curve, start_loss: float) -> float:
    """Primer's speedup of ``model`` over ``baseline`` (see the module docstring); NaN when a
    curve is empty or its final loss is not finite."""
    if not baseline or not model or not all(math.isfinite(c[-1][1]) for c in (baseline, model)):
        return math.nan
    target = max(baseline[-1][1], model[-1][1])
    return compute_to_reach(baseline, target, start_loss) / compute_to_reach(model, target, start_loss)


def validation_curve(loss_curve: Sequence[dict], axis: str) -> list[tuple[float, float]]:
    """The evaluated points of a ``TrainResult.loss_curve`` (as dicts) on ``axis`` (tokens,
    flops or seconds)."""
    return [(float(p[axis]), float(p["val_loss"])) for p in loss_curve if p.get("val_loss") is not None]
