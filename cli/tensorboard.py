"""``--tensorboard DIR``: a campaign's training curves and best-so-far as TensorBoard event files.

Each finished individual that trained becomes a run ``DIR/CAMPAIGN/individual-NNNNN`` with its
training loss (and validation loss where it was evaluated) against tokens trained; the run
``DIR/CAMPAIGN/best`` holds the campaign's best search loss so far against individuals
finished. Written as results arrive (and, on resume, for what was recorded before), with
torch's ``SummaryWriter``: ``pip install -e '.[tensorboard]'``, then ``tensorboard --logdir DIR``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from storage import Repository


class TensorBoardLog:
    """A campaign event listener (``on_event``) that writes TensorBoard runs under ``root``."""

    def __init__(self, repo: Repository, campaign_name: str, root: Path):
        from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

        self.repo, self.name, self.folder = repo, campaign_name, Path(root) / campaign_name
        shutil.rmtree(self.folder / "best", ignore_errors=True)  # rewritten whole by catch_up()
        self.best = SummaryWriter(str(self.folder / "best"))
        self.best_loss: float | None = None
        self.finished = 0

    def catch_up(self) -> None:
        """Write what a resumed campaign recorded before this run (individuals not yet written)."""
        campaign = self.repo.get_campaign(self.name)
        for individual in self.repo.finished_individuals(campaign.id) if campaign else []:
            self._individual(individual.id, individual.fitness)

    def __call__(self, event: dict[str, Any]) -> None:
        if event["kind"] == "recorded":
            self._individual(event["id"], event.get("fitness"))
        elif event["kind"] == "finished":
            self.best.flush()

    def _individual(self, individual_id: int, fitness: float | None) -> None:
        self.finished += 1
        if fitness is not None and (self.best_loss is None or fitness < self.best_loss):
            self.best_loss = fitness
        if self.best_loss is not None:
            self.best.add_scalar("best search loss", self.best_loss, self.finished)
        run = self.folder / f"individual-{individual_id:05d}"
        curve = (self.repo.result(individual_id) or {}).get("loss_curve") or []
        if not curve or run.exists():  # nothing trained, or written by an earlier run of the driver
            return
        from torch.utils.tensorboard import SummaryWriter

        with SummaryWriter(str(run)) as writer:
            for point in curve:
                if point.get("train_loss") is not None:
                    writer.add_scalar("loss/train", point["train_loss"], point["tokens"])
                if point.get("val_loss") is not None:
                    writer.add_scalar("loss/validation", point["val_loss"], point["tokens"])
