"""archevo's Python API: what the ``archevo`` commands do, from a notebook or a script.

    import archevo

    spec = archevo.get_preset("cpu").spec
    result = archevo.train(spec, archevo.seed("primer_ez", spec), archevo.load_tokenized("default", spec.vocab_size),
                           "1e5tokens", archevo.TrainConfig(batch_size=8))
    archevo.build_campaign(archevo.CampaignConfig(name="run1"), archevo.Repository("sqlite:///archevo.db")).run()

The names below are the public API; everything else may change between versions.
``examples/quickstart.py`` runs each of them end to end.
"""

from evaluator.compiler import compile_model
from evaluator.export import export_model as export
from evaluator.presets import PRESETS, Preset, get_preset
from evaluator.tokenization import load_tokenized
from evaluator.train import TrainConfig, TrainResult, train
from primitives.program import Architecture, ModelSpec
from primitives.seeds import SEEDS, seed
from primitives.validate import parse_architecture
from search.caches import clear_caches
from search.campaign import Campaign, build_campaign
from search.config import CampaignConfig
from search.confirm import confirm, summarize
from storage import Repository
from storage.views import frame, records

__all__ = [
    "Architecture",
    "Campaign",
    "CampaignConfig",
    "ModelSpec",
    "PRESETS",
    "Preset",
    "Repository",
    "SEEDS",
    "TrainConfig",
    "TrainResult",
    "build_campaign",
    "clear_caches",
    "compile_model",
    "confirm",
    "export",
    "frame",
    "get_preset",
    "load_tokenized",
    "parse_architecture",
    "records",
    "seed",
    "summarize",
    "train",
]
