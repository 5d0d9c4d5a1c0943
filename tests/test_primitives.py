"""The DSL: validation errors name the place, seeds are valid, graph work, listing, diff, cost."""

from __future__ import annotations

import ast
import json
import pathlib

import pytest

from primitives.builder import Builder
from primitives.cost import parameter_count
from primitives.graph import (
    architecture_hash,
    canonicalize,
    eliminate_dead_code,
    program_hash,
)
from primitives.listing import diff_architectures, list_architecture
from primitives.program import Architecture, ModelSpec, Program
from primitives.seeds import SEEDS, final, resolve, seed
from primitives.validate import ProgramError, parse_architecture, validate_program

ROOT = pathlib.Path(__file__).resolve().parents[1]


def seed_json(name: str = "transformer") -> dict:
    return json.loads(seed(name).to_json())


def error_of(document) -> str:
    with pytest.raises(ProgramError) as caught:
        parse_architecture(document if isinstance(document, str) else json.dumps(document))
    message = str(caught.value)
    assert "\n" not in message
    return message


def main_body(document: dict) -> list[dict]:
    return document["layers"][0]["subprograms"][0]["body"]


def test_primitives_never_import_torch():
    for path in (ROOT / "primitives").glob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {
            alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
        }
        imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
        assert not imported & {"torch", "evaluator", "search", "storage"}, path.name


@pytest.mark.parametrize("name", list(SEEDS))
def test_every_seed_is_valid_and_round_trips(name):
    architecture = seed(name)
    assert parse_architecture(architecture.to_json()) == architecture
    assert architecture_hash(parse_architecture(architecture.to_json())) == architecture_hash(architecture)


def test_seeds_are_structurally_distinct():
    assert len({architecture_hash(seed(name)) for name in SEEDS}) == len(SEEDS)


def test_unknown_op_is_named():
    document = seed_json()
    main_body(document)[0]["op"] = "layernrom"
    assert error_of(document) == "layers[0].main[0] (norm1 = layernrom): unknown op 'layernrom'"


def test_dangling_input_is_named():
    document = seed_json()
    main_body(document)[2]["inputs"] = ["x", "ghost"]
    assert "layers[0].main[2] (h = add): input 'ghost' is not defined in main" in error_of(document)


def test_cycle_is_reported():
    document = seed_json()
    main_body(document)[0]["inputs"] = ["y"]
    assert "layers[0].main: cycle: " in error_of(document)


def test_width_mismatch_is_reported():
    document = seed_json()
    document["layers"][0]["subprograms"][2]["body"][-1]["attrs"]["width"] = 16  # ffn.down: 8 → 16 units
    assert "(y = add): input widths differ: seq[8] vs seq[16]" in error_of(document)


def test_missing_field_and_wrong_shapes():
    document = seed_json()
    del main_body(document)[1]["op"]
    assert error_of(document) == "layers.0.subprograms.0.body.1.op: field missing"
    assert error_of("[1, 2]").startswith("expected a JSON object")
    assert error_of('{"layers": [').startswith("not JSON")
    assert error_of({"layers": "dense"}).startswith("layers")


def test_illegal_attribute_values_and_arity():
    document = seed_json()
    attention = document["layers"][0]["subprograms"][1]["body"]
    attention[0]["attrs"]["width"] = 0
    assert "attribute 'width': 0 is outside [1, 256]" in error_of(document)
    document = seed_json()
    document["layers"][0]["subprograms"][1]["body"][0]["attrs"]["colour"] = "red"
    assert "dense has no attribute 'colour'" in error_of(document)
    document = seed_json()
    main_body(document)[0]["inputs"] = ["x", "x"]
    assert "layernorm takes 1 input(s), got 2" in error_of(document)
    document = seed_json()
    document["layers"][0]["subprograms"][1]["body"][0]["attrs"]["init"] = {"kind": "normal"}
    assert "initialiser 'normal' needs 'std'" in error_of(document)


def test_kind_mismatch_and_call_rules():
    b = Builder("main")
    bad = b.attend("x", "x")  # a sequence where an attention map belongs
    with pytest.raises(ProgramError, match=r"input 1 \(x\) is seq\[8\], but attend takes map"):
        validate_program(Program(subprograms=[b.build(bad)]))
    b = Builder("main")
    with pytest.raises(ProgramError, match="call target 'main' must name a later subprogram"):
        validate_program(Program(subprograms=[b.build(b.call("main", "x"))]))


def test_layer_must_return_model_width():
    b = Builder("main")
    with pytest.raises(ProgramError, match=r"output 'h1' is seq\[16\], but a layer must return seq\[8\]"):
        validate_program(Program(subprograms=[b.build(b.dense("x", width=16))]))


def test_dead_code_is_removed_and_hash_blind_to_it():
    program = seed("transformer").layers[0]
    main = program.main
    extra = Builder("main")
    extra.body = list(main.body)
    extra.tanh("h", out="unused")
    with_dead = validate_program(Program(subprograms=[extra.build(main.output), *program.subprograms[1:]]))
    assert program_hash(with_dead) == program_hash(program)
    assert [i.out for i in eliminate_dead_code(with_dead).main.body] == [i.out for i in main.body]
    assert canonicalize(with_dead) == canonicalize(program)


def test_hash_sees_parameter_sharing():
    def attention(shared: bool) -> Program:
        b = Builder("main")
        q = b.dense("x", width=8, out="q")
        k = q if shared else b.dense("x", width=8, out="k")
        return validate_program(Program(subprograms=[b.build(b.attend(b.causal_softmax(b.attn_logits(q, k)), "x"))]))

    assert program_hash(attention(True)) != program_hash(attention(False))


def test_hash_ignores_subprogram_boundaries():
    inline = Builder("main")
    inlined = inline.build(inline.add("x", inline.relu(inline.dense("x", width=8, out="d"), out="r"), out="y"))
    outer, inner = Builder("main"), Builder("block")
    called = outer.build(outer.add("x", outer.call("block", "x", out="c"), out="y"))
    block = inner.build(inner.relu(inner.dense("x", width=8, out="d"), out="r"))
    assert program_hash(validate_program(Program(subprograms=[inlined]))) == program_hash(
        validate_program(Program(subprograms=[called, block]))
    )


def test_listing_has_one_line_per_instruction():
    architecture = seed("primer_ez")
    listing = list_architecture(architecture)
    assert "  q_conv = dconv3(q)" in listing
    instructions = sum(len(s.body) for p in architecture.programs().values() for s in p.subprograms)
    assert sum(" = " in line for line in listing.splitlines()) == instructions


@pytest.mark.parametrize(
    "old,new,expected",
    [
        (
            "transformer",
            "primer_ez",
            [
                "attention: + dconv3 after q",
                "attention: + dconv3 after k",
                "attention: + dconv3 after v",
                "ffn: act: relu → square(relu)",
            ],
        ),
        ("transformer", "squared_relu", ["ffn: act: relu → square(relu)"]),
        ("transformer", "gelu", ["ffn: act: relu → gelu"]),
        (
            "transformer",
            "rmsnorm",
            ["norm1: layernorm → rmsnorm", "norm2: layernorm → rmsnorm", "final: final: layernorm → rmsnorm"],
        ),
        ("transformer", "transformer", []),
    ],
)
def test_diff_in_words(old, new, expected):
    assert diff_architectures(seed(old), seed(new)) == expected


def test_parameter_count_from_registry_shapes():
    spec = ModelSpec(vocab_size=1000, d_model=64, n_layers=3, n_heads=2, seq_len=32)
    d, ff = 64, 256
    attention = 4 * d * d
    ffn = d * ff + ff + ff * d + d
    norms = 2 * 2 * d
    expected = 1000 * d + 32 * d + 3 * (attention + ffn + norms) + 2 * d
    assert parameter_count(spec, seed("transformer", spec)) == expected
    untied = spec.model_copy(update={"tie_embeddings": False})
    assert parameter_count(untied, seed("transformer", untied)) == expected + 1000 * d


def test_prefix_and_cycling_choose_programs_by_depth():
    sas = seed("sas")
    assert [sas.layer_place(i) for i in range(3)] == ["prefix[0]", "layers[0]", "layers[0]"]
    alternating = Architecture(layers=[seed("transformer").layers[0], seed("primer_ez").layers[0]], final=final(None))
    assert [alternating.layer_place(i) for i in range(4)] == ["layers[0]", "layers[1]", "layers[0]", "layers[1]"]


def test_model_spec_rejects_widths_that_do_not_split_into_heads():
    with pytest.raises(ValueError, match="does not split into 3 heads"):
        ModelSpec(d_model=128, n_heads=3)


def test_resolve_names_files_and_errors(tmp_path):
    path = tmp_path / "a.json"
    path.write_text(seed("sas").to_json())
    assert resolve(str(path)) == seed("sas")
    with pytest.raises(KeyError, match="neither a seed"):
        resolve("nonsense")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ProgramError, match="bad.json: not JSON"):
        resolve(str(tmp_path / "bad.json"))


def test_validation_normalises_an_int_where_a_float_belongs():
    """1 == 1.0, but they serialise (and hash) differently: the normal form is the float."""
    b = Builder("main")
    program = Program(subprograms=[b.build(b.emit("cmul", "x", value=1, out="y"))])
    normal = validate_program(program)
    assert type(normal.main.body[0].attrs["value"]) is float
    assert validate_program(normal) is normal  # a normal program comes back as it is


def test_a_parent_subprogram_known_normal_is_still_type_checked_against_the_changed_one():
    """validate_program(normal=...) skips the per-subprogram checks of a mutation's untouched
    subprograms, not the type inference that ties them to the changed one."""
    parent = seed("transformer").layers[0]
    attention = parent.subprogram("attention")
    body = [
        ins.model_copy(update={"attrs": {**ins.attrs, "width": 16}}) if ins.out == "proj" else ins
        for ins in attention.body
    ]
    child = Program(
        subprograms=[
            s if s is not attention else attention.model_copy(update={"body": body}) for s in parent.subprograms
        ]
    )
    assert validate_program(parent, normal=parent.subprograms) is parent
    with pytest.raises(ProgramError, match="main"):  # main adds the stream (width 8) to a width-16 output
        validate_program(child, "layers[0]", normal=parent.subprograms)


@pytest.mark.parametrize(
    "name, why",
    [
        ("h\n", "not a plain name"),
        ("training", "reserved"),
        ("forward", "reserved"),
        ("x" * 65, "not a plain name"),
        ("class", "keyword"),
    ],
)
def test_value_names_are_matched_in_full_and_never_shadow_the_module(name, why):
    b = Builder("main")
    h = b.emit("relu", "x", out=name)
    with pytest.raises(ProgramError, match=why):
        validate_program(Program(subprograms=[b.build(h)]))


def test_reserved_names_cover_every_public_attribute_of_nn_module():
    import re

    from torch import nn

    from primitives.validate import RESERVED

    public = {n for n in dir(nn.Module) if re.fullmatch(r"[a-z][a-z0-9_]*", n)}
    assert public | {"training"} <= RESERVED


def test_a_description_cannot_break_the_generated_source():
    from evaluator.compiler import generate_source

    architecture = seed("transformer").model_copy(update={"description": 'ends in a backslash \\\n"""; import os'})
    compile(generate_source(ModelSpec(), architecture), "<test>", "exec")


def test_known_edits_are_recognised_on_the_programs():
    from primitives.known_edits import known_edits

    transformer = seed("transformer")
    assert known_edits(transformer, transformer) == []
    assert known_edits(transformer, seed("primer_ez")) == [
        "squared activation in the FFN",
        "dconv after Q, K or V",
        "  of which kernel 3",
        "any local mixing (causal, not attention)",
    ]
    assert known_edits(transformer, seed("squared_relu")) == ["squared activation in the FFN"]
    assert known_edits(seed("primer_ez"), transformer) == []  # fewer instances is not an edit
