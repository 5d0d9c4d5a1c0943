"""Human-readable views: a listing (one instruction per line, as in Primer's figures) and a
diff between two programs in words.

The diff matches instructions by value name: mutation keeps the names of untouched
instructions and seeds share names (q, k, v, up, down, ...), so names are a stable identity.
"""

from __future__ import annotations

from .program import Architecture, Instruction, Program, Subprogram
from .registry import CALL, REGISTRY
from .interpret import topological_order


def format_value(value: object) -> str:
    if isinstance(value, dict):  # an initialiser
        fields = [
            f"{v:g}" if isinstance(v, float) else "/".join(f"{x:.3g}" for x in v)
            for k, v in value.items()
            if k != "kind"
        ]
        return f"{value['kind']}({', '.join(fields)})"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value).lower() if isinstance(value, bool) else str(value)


def describe_op(ins: Instruction) -> str:
    """``dconv3``, ``dense32``, ``call attention``: the op with its defining attribute."""
    if ins.op == CALL:
        return f"call {ins.attrs['target']}"
    if ins.op == "dconv" or ins.op == "conv":
        return f"{ins.op}{ins.attrs['kernel']}"
    if ins.op == "dense":
        return f"dense{ins.attrs['width']}"
    return ins.op


def format_instruction(ins: Instruction) -> str:
    """``q_conv = dconv3(q)``: attributes shown only where they differ from the default."""
    in_name = {"width", "kernel"}
    attrs = (
        {}
        if ins.op == CALL
        else {k: v for k, v in ins.attrs.items() if v != REGISTRY[ins.op].attrs[k].default and k not in in_name}
    )
    shown = "".join(f" {k}={format_value(v)}" for k, v in attrs.items())
    return f"{ins.out} = {describe_op(ins)}({', '.join(ins.inputs)}){shown}"


def list_subprogram(sub: Subprogram) -> list[str]:
    lines = [f"{sub.name}({', '.join(sub.params)}):"]
    lines += [f"  {format_instruction(sub.body[i])}" for i in topological_order(sub)]
    return lines + [f"  return {sub.output}"]


def list_program(program: Program) -> str:
    return "\n".join(line for sub in program.subprograms for line in list_subprogram(sub))


def list_architecture(architecture: Architecture) -> str:
    blocks = [f"# {architecture.name}: {architecture.description}"] if architecture.description else []
    for place, program in architecture.programs().items():
        blocks.append(f"[{place}]\n{list_program(program)}")
    return "\n\n".join(blocks)


# --------------------------------------------------------------------------- diff


def diff_subprograms(old: Subprogram, new: Subprogram) -> list[str]:
    """Words for what changed from ``old`` to ``new`` (same subprogram)."""
    before = {ins.out: ins for ins in old.body}
    after = {ins.out: ins for ins in new.body}
    changes = []
    for name in (n for n in after if n not in before):
        changes.append(_describe_insertion(after[name], before, after))
    for name in (n for n in before if n not in after):
        changes.append(f"- {describe_op(before[name])} {name}")
    for name in (n for n in after if n in before):
        was, now = before[name], after[name]
        if describe_op(was) != describe_op(now):
            changes.append(f"{name}: {describe_op(was)} → {describe_op(now)}")
        elif was.attrs != now.attrs:
            changed = [
                f"{k} {format_value(was.attrs.get(k))} → {format_value(now.attrs.get(k))}"
                for k in sorted(set(was.attrs) | set(now.attrs))
                if was.attrs.get(k) != now.attrs.get(k)
            ]
            changes.append(f"{name}: {describe_op(now)} {', '.join(changed)}")
        if was.inputs != now.inputs and not _rerouted_through_insertion(was, now, before):
            changes.append(f"{name}: inputs ({', '.join(was.inputs)}) → ({', '.join(now.inputs)})")
    if old.output != new.output and new.output in before:
        changes.append(f"returns {new.output} instead of {old.output}")
    return changes


def _describe_insertion(ins: Instruction, before: dict, after: dict) -> str:
    """ "relu → square(relu)" for a pointwise op wrapped around an old value, else
    "+ dconv3 after q"."""
    old_inputs = [n for n in ins.inputs if n in before or n not in after]
    op = REGISTRY.get(ins.op)
    if (
        len(ins.inputs) == 1
        and op is not None
        and op.mixing == "pointwise"
        and not op.params([0], 0, ins.attrs, 1)
        and ins.inputs[0] in before
    ):
        inner = describe_op(before[ins.inputs[0]])
        return f"{ins.inputs[0]}: {inner} → {describe_op(ins)}({inner})"
    where = f" after {', '.join(old_inputs)}" if old_inputs else f" on {', '.join(ins.inputs)}"
    return f"+ {describe_op(ins)}{where}"


def _rerouted_through_insertion(was: Instruction, now: Instruction, before: dict) -> bool:
    """An input replaced by a new value computed from the old input is the insertion itself."""
    return len(was.inputs) == len(now.inputs) and all(a == b or b not in before for a, b in zip(was.inputs, now.inputs))


def diff_programs(old: Program, new: Program) -> list[str]:
    olds = {s.name: s for s in old.subprograms}
    news = {s.name: s for s in new.subprograms}
    changes = []
    for name, sub in news.items():
        if name not in olds:
            changes.append(f"+ subprogram {name}")
            continue
        prefix = "" if name == new.main.name else f"{name}: "
        changes += [prefix + c for c in diff_subprograms(olds[name], sub)]
    changes += [f"- subprogram {name}" for name in olds if name not in news]
    return changes


def diff_architectures(old: Architecture, new: Architecture) -> list[str]:
    """Every change, prefixed by its place when the architecture has more than one program."""
    olds, news = old.programs(), new.programs()
    several = len(news) > 2 or len(olds) > 2
    changes = []
    for place in dict.fromkeys([*olds, *news]):
        if place not in olds or place not in news:
            changes.append(f"{'+' if place in news else '-'} {place}")
            continue
        label = f"{place}: " if several or place == "final" else ""
        changes += [label + c for c in diff_programs(olds[place], news[place])]
    return changes
