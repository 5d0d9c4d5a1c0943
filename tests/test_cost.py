"""The registry's cost model: every op's FLOPs, checked against torch's counter where it counts."""

from __future__ import annotations

import pytest

from evaluator.compiler import compile_model, torch_forward_flops
from primitives.builder import Builder
from primitives.cost import TRAINING_MULTIPLIER, Flops, forward_flops, program_flops, training_flops
from primitives.program import ModelSpec, Program
from primitives.registry import REGISTRY
from primitives.seeds import SEEDS, seed

SPECS = {
    "small": ModelSpec(vocab_size=512, d_model=64, n_layers=2, n_heads=4, seq_len=32),
    "cpu": ModelSpec(vocab_size=1024, d_model=128, n_layers=4, n_heads=4, seq_len=128),
}


@pytest.mark.parametrize("spec_name", SPECS)
@pytest.mark.parametrize("name", list(SEEDS))
def test_matmul_flops_match_torch_counter_for_every_seed(name, spec_name):
    spec = SPECS[spec_name]
    architecture = seed(name, spec)
    counted = torch_forward_flops(compile_model(spec, architecture), spec)
    assert forward_flops(spec, architecture).matmul == pytest.approx(counted, rel=0.01)


def test_primer_ez_costs_more_than_the_transformer():
    """Its depthwise convolutions and squares are counted (torch's counter calls them free)."""
    spec = SPECS["cpu"]
    transformer, primer_ez = (forward_flops(spec, seed(n, spec)) for n in ("transformer", "primer_ez"))
    assert primer_ez.matmul == transformer.matmul
    # three 3-tap dconvs of width d per layer (2 FLOPs per tap) and one square per FFN unit
    extra = spec.n_layers * (3 * 2 * 3 * spec.d_model + 4 * spec.d_model)
    assert primer_ez.other - transformer.other == pytest.approx(extra)
    assert training_flops(spec, seed("primer_ez", spec)) > training_flops(spec, seed("transformer", spec))


def test_every_op_states_its_cost():
    assert all(callable(op.flops) for op in REGISTRY.values())


def test_training_is_three_forwards_and_the_frame_is_counted():
    spec = SPECS["small"]
    architecture = seed("transformer", spec)
    forward = forward_flops(spec, architecture)
    assert training_flops(spec, architecture) == TRAINING_MULTIPLIER * forward.total
    layer, final = program_flops(architecture.layers[0], spec), program_flops(architecture.final, spec)
    frame = forward + (layer * spec.n_layers + final) * -1
    assert frame.matmul == 2 * spec.vocab_size * spec.d_model  # the unembedding
    assert frame.other == 4 * spec.vocab_size + spec.d_model  # the loss, the positions


def test_elementwise_work_is_not_free():
    """Replacing a layer by elementwise work must cost something, or a FLOPs budget rewards it."""
    spec = SPECS["small"]
    b = Builder("main")
    y = b.add("x", b.cumsum(b.tanh("x")))
    cost = program_flops(Program(subprograms=[b.build(y)]), spec)
    assert cost == Flops(matmul=0, other=3 * spec.d_model)


@pytest.mark.parametrize("heads", [4, 16])
@pytest.mark.parametrize("name", ["transformer", "primer_ez"])
def test_the_memory_estimate_bounds_a_step_without_counting_maps_the_fused_kernel_never_makes(name, heads):
    """An upper estimate, close: the fused attention kernel never materialises its heads ×
    seq_len maps per token, which the estimate once counted (11× too high at 16 heads)."""
    import torch

    from evaluator.train import step_memory_bytes
    from primitives.cost import training_memory_bytes

    spec = ModelSpec(vocab_size=1024, d_model=256, n_layers=2, n_heads=heads, seq_len=256)
    architecture = seed(name, spec)
    torch.manual_seed(0)
    batch = torch.randint(1024, (8, 257))
    ratio = training_memory_bytes(spec, architecture, 8) / step_memory_bytes(compile_model(spec, architecture), batch)
    assert 1.0 <= ratio <= 1.5, ratio
