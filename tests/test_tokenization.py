"""Tokenization: byte-level BPE round trip, the EOT stream layout, and the on-disk cache."""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path
from pydoc_data.topics import topics

import numpy as np
import pytest

from evaluator import tokenization
from evaluator.corpora import open_corpus
from evaluator.tokenization import EOT, EOT_ID, load_tokenized

VOCAB = 300


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("ARCHEVO_CACHE_DIR", str(root))
    return root


@pytest.fixture(scope="module")
def topics_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pydoc's help topics (real English prose shipped with Python), one file per topic."""
    root = tmp_path_factory.mktemp("topics")
    for name, text in sorted(topics.items()):
        (root / f"{name}.txt").write_text(text, encoding="utf-8")
    return root


@pytest.fixture
def spec(topics_dir: Path) -> str:
    return f"text:{topics_dir}/*.txt"


def documents(stream: np.ndarray) -> list[np.ndarray]:
    """Split a token stream ``EOT doc EOT doc ... EOT`` back into documents."""
    cuts = np.flatnonzero(stream == EOT_ID)
    return [stream[a + 1 : b] for a, b in zip(cuts[:-1], cuts[1:], strict=True)]


def test_stream_layout_and_round_trip(cache: Path, spec: str) -> None:
    tc = load_tokenized(spec, VOCAB)
    corpus = open_corpus(spec)
    assert tc.corpus_identity == corpus.identity
    assert tc.train.dtype == np.uint16 and tc.validation.dtype == np.uint16
    for split, stream in (("train", tc.train), ("validation", tc.validation)):
        texts = list(corpus.iter_texts(split))  # type: ignore[arg-type]
        assert texts
        assert stream[0] == EOT_ID and stream[-1] == EOT_ID
        assert int(stream.max()) < tc.vocab_size
        decoded = [tc.tokenizer.decode(doc.tolist()) for doc in documents(stream)]
        assert decoded == texts
    assert tc.tokenizer.token_to_id(EOT) == EOT_ID
    assert tc.tokenizer.get_vocab_size() <= VOCAB
    assert tc.bytes_per_token > 1
    val_bytes = sum(len(t.encode()) for t in corpus.iter_texts("validation"))
    assert tc.bytes_per_token == pytest.approx(val_bytes / len(tc.validation))
    assert tc.bits_per_byte(math.log(2)) == pytest.approx(1 / tc.bytes_per_token)


def test_any_text_round_trips_and_eot_in_text_is_text(cache: Path, spec: str) -> None:
    tok = load_tokenized(spec, VOCAB).tokenizer
    for text in ["", "x", "  leading spaces\n\ttabs", "naïve café — 日本語 🙂 £40 •", f"a {EOT} b", "\r\n\x00"]:
        ids = tok.encode(text).ids
        assert EOT_ID not in ids
        assert tok.decode(ids) == text


def test_second_call_hits_the_cache(cache: Path, spec: str, monkeypatch: pytest.MonkeyPatch) -> None:
    first = load_tokenized(spec, VOCAB)

    def no_training(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cache was not used")

    monkeypatch.setattr(tokenization, "train_tokenizer", no_training)
    start = time.perf_counter()
    second = load_tokenized(spec, VOCAB)
    assert time.perf_counter() - start < 1.0
    assert second.cache_dir == first.cache_dir
    assert np.array_equal(second.train, first.train)
    assert np.array_equal(second.validation, first.validation)
    assert second.bytes_per_token == first.bytes_per_token
    assert isinstance(second.train, np.memmap) and second.train.mode == "r"
    assert sorted(p.name for p in first.cache_dir.iterdir()) == [
        "meta.json",
        "tokenizer.json",
        "train.bin",
        "validation.bin",
    ]
    assert [p.name for p in first.cache_dir.parent.iterdir()] == [first.cache_dir.name]  # no temp leftovers


def test_cache_key_changes_with_settings(cache: Path, spec: str) -> None:
    base = load_tokenized(spec, VOCAB)
    assert load_tokenized(spec, VOCAB + 20).cache_dir != base.cache_dir
    capped = load_tokenized(spec, VOCAB, max_train_tokens=1000)
    assert capped.cache_dir != base.cache_dir
    assert len(capped.train) == 1000
    assert np.array_equal(capped.train, base.train[:1000])
    assert np.array_equal(capped.validation, base.validation)


def test_bpe_character_cap(cache: Path, spec: str) -> None:
    seen: dict[str, int] = {}
    load_tokenized(spec, VOCAB, bpe_max_chars=5000, progress=lambda stage, n: seen.__setitem__(stage, n))
    assert seen["bpe"] == 5000
    assert seen["train"] > 0 and seen["validation"] > 0


def test_lost_race_uses_the_winners_cache(cache: Path, spec: str, monkeypatch: pytest.MonkeyPatch) -> None:
    winner = load_tokenized(spec, VOCAB).cache_dir
    saved = winner.parent.parent / "saved"
    shutil.move(winner, saved)
    real_build = tokenization._build

    def build_then_lose(*args: object, **kwargs: object) -> None:
        real_build(*args, **kwargs)  # type: ignore[arg-type]
        shutil.copytree(saved, winner)  # another process finished first

    monkeypatch.setattr(tokenization, "_build", build_then_lose)
    tc = load_tokenized(spec, VOCAB)
    assert tc.cache_dir == winner
    assert [p.name for p in winner.parent.iterdir()] == [winner.name]


def test_failed_build_leaves_no_cache(cache: Path, spec: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(tokenization, "_write_tokens", crash)
    with pytest.raises(KeyboardInterrupt):
        load_tokenized(spec, VOCAB)
    assert list((cache / "tokenized").iterdir()) == []


def test_vocab_too_small(cache: Path, spec: str) -> None:
    with pytest.raises(ValueError, match="at least 257"):
        load_tokenized(spec, 100)


@pytest.mark.integration
def test_default_corpus_end_to_end(cache: Path) -> None:
    start = time.perf_counter()
    tc = load_tokenized("default", 4096)
    assert time.perf_counter() - start < 60
    assert tc.corpus_identity.startswith("default:")
    assert len(tc.train) > 1_000_000 and len(tc.validation) > 10_000
    assert int(tc.train.max()) < 4096
    assert 2 < tc.bytes_per_token < 6
    start = time.perf_counter()
    again = load_tokenized("default", 4096)
    assert time.perf_counter() - start < 1.0
    assert again.cache_dir == tc.cache_dir


def _damage(path: Path, how: str) -> None:
    if how == "zeroed validation":  # the right length, every id 0: a confident wrong loss
        path.joinpath("validation.bin").write_bytes(bytes(path.joinpath("validation.bin").stat().st_size))
    elif how == "flipped train byte":
        data = bytearray(path.joinpath("train.bin").read_bytes())
        data[len(data) // 2] ^= 0xFF  # an id far outside the vocabulary
        path.joinpath("train.bin").write_bytes(bytes(data))
    else:
        path.joinpath("meta.json").write_text("{not json")


@pytest.mark.parametrize("how", ["zeroed validation", "flipped train byte", "damaged meta.json"])
def test_a_damaged_cache_is_set_aside_and_rebuilt_saying_so(
    cache: Path, spec: str, how: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    first = load_tokenized(spec, VOCAB)
    train, validation = np.array(first.train), np.array(first.validation)
    del first
    path = load_tokenized(spec, VOCAB).cache_dir
    _damage(path, how)
    monkeypatch.setattr(tokenization, "_VERIFIED", set())  # a new process: it checks the cache
    again = load_tokenized(spec, VOCAB)
    assert "corrupt token cache" in capsys.readouterr().err
    assert np.array_equal(again.train, train) and np.array_equal(again.validation, validation)
    assert again.cache_dir == path and any(p.name.startswith(".damaged-") for p in path.parent.iterdir())


def test_a_cache_written_before_checksums_is_sealed_on_first_use(cache: Path, spec: str, monkeypatch) -> None:
    import json

    path = load_tokenized(spec, VOCAB).cache_dir
    meta = json.loads((path / "meta.json").read_text())
    (path / "meta.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "checksums"}))
    monkeypatch.setattr(tokenization, "_VERIFIED", set())
    load_tokenized(spec, VOCAB)
    assert json.loads((path / "meta.json").read_text())["checksums"] == meta["checksums"]
