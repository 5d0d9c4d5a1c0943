"""Instances of the synthetic tasks, drawn from a seeded numpy generator.

The definitions follow MAD (Poli et al. 2024, repository ``athms/mad-lab``,
``mad/data/instances.py``); the code is this project's. Every generator returns
``(inputs, targets)``, two int64 arrays of shape [n, seq_len]: ``targets[i, t]`` is what the
model must output at position t (it has seen ``inputs[i, :t + 1]``), ``IGNORE`` where the task
asks nothing. Models train and are scored on the asked positions only.

Differences from MAD, all forced by a CPU budget of seconds per task or by a decoder-only
model, are stated where they occur.
"""

from __future__ import annotations

from itertools import permutations
from typing import ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

IGNORE = -100


class Settings(BaseModel):
    """What every task has: its vocabulary and sequence length."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    derived: ClassVar[tuple[str, ...]] = ()  # fields that follow from the others

    vocab_size: int = Field(ge=4, le=65536)
    seq_len: int = Field(ge=4, le=4096)


# --------------------------------------------------------------------------- in-context recall


class RecallSettings(Settings):
    """Keys from the first half of the non-noise vocabulary, values from the second half;
    ``noise_vocab`` tokens (the top of the vocabulary) replace a pair with probability
    ``frac_noise``."""

    vocab_size: int = 16
    seq_len: int = 32
    noise_vocab: int = Field(0, ge=0)
    frac_noise: float = Field(0.0, ge=0, lt=1)

    @model_validator(mode="after")
    def _room_for_keys(self) -> "RecallSettings":
        if self.vocab_size - self.noise_vocab < 4:
            raise ValueError(
                f"vocab_size {self.vocab_size} leaves fewer than 4 key/value tokens beside "
                f"noise_vocab {self.noise_vocab}"
            )
        if self.frac_noise > 0 and self.noise_vocab == 0:
            raise ValueError("frac_noise > 0 needs noise_vocab > 0")
        return self


def in_context_recall(
    rng: np.random.Generator, n: int, s: RecallSettings, test: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """MAD's multi-query in-context recall: a sequence of adjacent key, value tokens; a key keeps
    its value within a sequence, and every value whose key appeared before is asked (at its
    key's position). Solving it needs the value bound to its key (an induction circuit or a
    short convolution) and retrieval by content."""
    half = (s.vocab_size - s.noise_vocab) // 2
    pairs = (s.seq_len + 1 + 1) // 2
    keys = rng.integers(0, half, (n, pairs))
    values = half + rng.integers(0, half, (n, half))  # each instance's key → value map
    value = np.take_along_axis(values, keys, axis=1)
    noise = rng.random((n, pairs)) < s.frac_noise
    tokens = np.empty((n, 2 * pairs), np.int64)
    tokens[:, 0::2] = np.where(noise, 2 * half + rng.integers(0, max(s.noise_vocab, 1), (n, pairs)), keys)
    tokens[:, 1::2] = np.where(noise, 2 * half + rng.integers(0, max(s.noise_vocab, 1), (n, pairs)), value)
    seen_before = _seen_before(np.where(noise, -1, keys), half)
    asked = np.zeros((n, 2 * pairs), bool)
    asked[:, 1::2] = seen_before & ~noise
    return _shifted(tokens, asked, s.seq_len)


def _seen_before(keys: np.ndarray, n_keys: int) -> np.ndarray:
    """[n, pairs] bool: this key (−1: none) occurred at an earlier pair of the same row."""
    onehot = keys[:, :, None] == np.arange(n_keys)
    earlier = np.cumsum(onehot, axis=1) - onehot
    return (earlier * onehot).sum(axis=2) > 0


def _shifted(tokens: np.ndarray, asked: np.ndarray, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs are the first ``seq_len`` tokens; the target at t is token t + 1 where it is asked."""
    inputs = tokens[:, :seq_len]
    targets = np.where(asked[:, 1 : seq_len + 1], tokens[:, 1 : seq_len + 1], IGNORE)
    return np.ascontiguousarray(inputs), targets


class PairRecallSettings(Settings):
    """``n_keys`` × ``n_values`` pair tokens, then ``n_keys`` query tokens and ``n_values``
    answer tokens; after the first pair each position is a query with probability ``queries``."""

    derived: ClassVar[tuple[str, ...]] = ("vocab_size",)

    vocab_size: int = 80  # n_keys * n_values + n_keys + n_values
    seq_len: int = 32
    n_keys: int = Field(8, ge=2, le=128)
    n_values: int = Field(8, ge=2, le=128)
    queries: float = Field(0.5, gt=0, lt=1)

    @model_validator(mode="before")
    @classmethod
    def _derive_vocab(cls, data: dict) -> dict:
        keys, values = data.get("n_keys", 8), data.get("n_values", 8)
        if isinstance(keys, int) and isinstance(values, int):
            vocab = keys * values + keys + values
            if data.get("vocab_size", vocab) != vocab:
                raise ValueError(f"vocab_size follows from n_keys and n_values ({vocab} here); set those instead")
            data = {**data, "vocab_size": vocab}
        return data


def pair_recall(
    rng: np.random.Generator, n: int, s: PairRecallSettings, test: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """In-context recall with each key-value pair written as one token (not in MAD): a query
    for key k is answered by the value of the pair token with key k seen earlier. Retrieval by
    content and nothing else, so one attention layer solves it in a few hundred steps, and a
    layer without sequence mixing cannot do better than guessing. The answers are tokens of
    their own, never inputs."""
    kv, query, answer = 0, s.n_keys * s.n_values, s.n_keys * s.n_values + s.n_keys
    values = rng.integers(0, s.n_values, (n, s.n_keys))
    keys = rng.integers(0, s.n_keys, (n, s.seq_len))
    is_query = rng.random((n, s.seq_len)) < s.queries
    is_query[:, 0] = False
    # a query asks for a key shown before it: draw among the row's pair keys so far
    inputs = np.empty((n, s.seq_len), np.int64)
    targets = np.full((n, s.seq_len), IGNORE, np.int64)
    rows = np.arange(n)
    shown = np.zeros((n, s.seq_len), np.int64)
    count = np.zeros(n, np.int64)
    for t in range(s.seq_len):
        q = is_query[:, t]
        pick = shown[rows, (rng.random(n) * np.maximum(count, 1)).astype(np.int64)]
        key = np.where(q, pick, keys[:, t])
        value = values[rows, key]
        inputs[:, t] = np.where(q, query + key, kv + key * s.n_values + value)
        targets[:, t] = np.where(q, answer + value, IGNORE)
        shown[rows[~q], count[~q]] = key[~q]
        count += ~q
    return inputs, targets


class FuzzyRecallSettings(Settings):
    """Keys and values are motifs of 1 to ``key_motif`` / ``value_motif`` adjacent tokens; the
    sequence is left-padded with the pad token (the top of the vocabulary)."""

    vocab_size: int = 16
    seq_len: int = 32
    key_motif: int = Field(2, ge=1, le=4)
    value_motif: int = Field(2, ge=1, le=4)

    @model_validator(mode="after")
    def _fits(self) -> "FuzzyRecallSettings":
        if (self.vocab_size - 1) // 2 < max(self.key_motif, self.value_motif):
            raise ValueError(
                f"vocab_size {self.vocab_size} has too few tokens for motifs of {max(self.key_motif, self.value_motif)}"
            )
        if self.seq_len < 4 * (self.key_motif + self.value_motif):
            raise ValueError(f"seq_len {self.seq_len} is too short for motifs of {self.key_motif} + {self.value_motif}")
        return self


def fuzzy_in_context_recall(
    rng: np.random.Generator, n: int, s: FuzzyRecallSettings, test: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """MAD's fuzzy recall, multi-query: a key motif keeps its value motif within a sequence;
    every token of a value motif whose key motif appeared before is asked. At test time every
    key has the largest motif size (as in MAD); in training the sizes vary."""
    half = (s.vocab_size - 1) // 2
    pad = s.vocab_size - 1
    key_motifs = {size: list(permutations(range(half), size)) for size in range(1, s.key_motif + 1)}
    value_motifs = [m for size in range(1, s.value_motif + 1) for m in permutations(range(half, 2 * half), size)]
    inputs = np.full((n, s.seq_len + 1), pad, np.int64)
    asked = np.zeros((n, s.seq_len + 1), bool)
    sizes = [s.key_motif] if test else list(range(1, s.key_motif + 1))
    for i in range(n):
        tokens: list[int] = []
        flags: list[bool] = []
        binding: dict[tuple, tuple] = {}
        while True:
            motifs = key_motifs[sizes[rng.integers(len(sizes))]]
            key = motifs[rng.integers(len(motifs))]
            value = binding.get(key) or value_motifs[rng.integers(len(value_motifs))]
            if len(tokens) + len(key) + len(value) > s.seq_len + 1:
                break
            flags += [False] * len(key) + [key in binding] * len(value)
            tokens += [*key, *value]
            binding[key] = value
        inputs[i, s.seq_len + 1 - len(tokens) :] = tokens  # left-padded
        asked[i, s.seq_len + 1 - len(tokens) :] = flags
    return _shifted(inputs, asked, s.seq_len)


# --------------------------------------------------------------------------- copying


class CopySettings(Settings):
    """``to_copy`` content tokens scattered among blanks, then the copy token and ``to_copy``
    blanks at whose positions the content is asked back in order (MAD: sequences of 256 with
    16 tokens to copy)."""

    vocab_size: int = 16
    seq_len: int = 32
    to_copy: int = Field(4, ge=1)

    @model_validator(mode="after")
    def _fits(self) -> "CopySettings":
        if self.seq_len <= 2 * self.to_copy + 1:
            raise ValueError(f"seq_len {self.seq_len} must exceed 2 × to_copy + 1 = {2 * self.to_copy + 1}")
        return self


def selective_copying(
    rng: np.random.Generator, n: int, s: CopySettings, test: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """MAD's selective copying: remember the non-blank tokens, in order, across the blanks."""
    blank, copy = s.vocab_size - 2, s.vocab_size - 1
    span = s.seq_len - s.to_copy - 1  # content and blanks before the copy token
    content = rng.integers(0, s.vocab_size - 2, (n, s.to_copy))
    where = np.sort(rng.random((n, span)).argsort(axis=1)[:, : s.to_copy], axis=1)
    inputs = np.full((n, s.seq_len), blank, np.int64)
    np.put_along_axis(inputs, where, content, axis=1)
    inputs[:, span] = copy
    targets = np.full((n, s.seq_len), IGNORE, np.int64)
    targets[:, span + 1 :] = content
    return inputs, targets


# --------------------------------------------------------------------------- memorization


class MemorizationSettings(Settings):
    """Key, insert-token pairs; one key → value map for every instance, drawn from ``map_seed``
    (not from the task's seed: the map is what the weights must learn)."""

    vocab_size: int = 256
    seq_len: int = 32
    map_seed: int = Field(12345, ge=0)

    @model_validator(mode="after")
    def _even(self) -> "MemorizationSettings":
        if self.seq_len % 2:
            raise ValueError(f"seq_len {self.seq_len} must be even (key, insert-token pairs)")
        return self


def memorization(
    rng: np.random.Generator, n: int, s: MemorizationSettings, test: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """MAD's memorization: at each insert token, the value the fixed map gives its key."""
    half = (s.vocab_size - 1) // 2
    insert = s.vocab_size - 1
    mapping = half + np.random.default_rng(s.map_seed).permutation(half)
    keys = rng.integers(0, half, (n, s.seq_len // 2))
    inputs = np.empty((n, s.seq_len), np.int64)
    inputs[:, 0::2], inputs[:, 1::2] = keys, insert
    targets = np.full((n, s.seq_len), IGNORE, np.int64)
    targets[:, 1::2] = mapping[keys]
    return inputs, targets


# --------------------------------------------------------------------------- compression


class CompressionSettings(Settings):
    """``seq_len − 1`` random tokens, then the compression token (the top of the vocabulary)."""

    vocab_size: int = 16
    seq_len: int = 12


def compression(
    rng: np.random.Generator, n: int, s: CompressionSettings, test: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Compression adapted to a decoder-only model. MAD passes the sequence through an
    encoder's pooled vector to a decoder; here the model's residual stream at the compression
    token is that vector, and a linear probe (trained with the model) must read every earlier
    token back from it. Targets are those tokens, [n, seq_len − 1]."""
    tokens = rng.integers(0, s.vocab_size - 1, (n, s.seq_len - 1))
    inputs = np.concatenate([tokens, np.full((n, 1), s.vocab_size - 1)], axis=1).astype(np.int64)
    return inputs, tokens.astype(np.int64)
