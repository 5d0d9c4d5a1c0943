"""Byte-level BPE tokenization of a corpus, cached on disk as memory-mapped token arrays.

Text is tokenized once per (corpus identity, tokenizer settings) and served to every worker
as ``np.memmap`` arrays, so a worker's start-up costs milliseconds, not a tokenizer pass.
Each split is one flat stream ``EOT doc EOT doc ... EOT``: the end-of-text token (id 0)
precedes the first document and ends every document, so the model learns where
documents (LM1B sentences) end, as the LM1B convention counts ``</S>``.

A cache records its files' checksums when it is written, and a process checks them the first
time it opens the cache: a damaged cache (a zeroed split scores a confident wrong loss) is set
aside and rebuilt, saying so. A cache written before checksums is sealed as it is on first use.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

import numpy as np
import tokenizers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from evaluator.corpora import Corpus, Split, open_corpus

EOT = "<|endoftext|>"
EOT_ID = 0
FORMAT_VERSION = 1
DEFAULT_BPE_MAX_CHARS = 20_000_000
_MIN_VOCAB = 257  # 256 byte symbols + EOT
_BATCH_CHARS = 1_000_000  # text per encode_batch call: large enough to use every core
_FILES = ("tokenizer.json", "train.bin", "validation.bin")
_VERIFIED: set[Path] = set()  # caches this process has checked against their checksums

Progress = Callable[[str, int], None]
"""Called as ``progress(stage, count)``: stage "bpe" counts characters read for training,
"train"/"validation" count tokens written so far."""


@dataclass
class TokenizedCorpus:
    """A corpus's token streams plus what is needed to interpret losses on them."""

    train: np.ndarray  # a memory map, or (detached) a plain array
    validation: np.ndarray
    tokenizer: Tokenizer
    bytes_per_token: float  # UTF-8 bytes of validation documents / validation tokens
    vocab_size: int  # the requested size: every id is < vocab_size (the model's embedding rows)
    corpus_identity: str
    cache_dir: Path

    def detached(self) -> TokenizedCorpus:
        """The same corpus as plain arrays, for a worker on another machine (Ray's object
        store ships it): a memory map pickles as a copy anyway, and the cache folder does not
        exist there."""
        return replace(self, train=np.asarray(self.train), validation=np.asarray(self.validation))

    def bits_per_byte(self, loss_nats_per_token: float) -> float:
        """Convert a mean validation loss (nats/token) to bits per byte, comparable across tokenizers."""
        return loss_nats_per_token / np.log(2) / self.bytes_per_token


def cache_root() -> Path:
    """``$ARCHEVO_CACHE_DIR`` or ``~/.cache/archevo``."""
    return Path(os.path.expanduser(os.environ.get("ARCHEVO_CACHE_DIR") or "~/.cache/archevo"))


def token_dtype(vocab_size: int) -> type[np.unsignedinteger]:
    """The narrowest unsigned dtype holding ids ``0 .. vocab_size-1``."""
    return np.uint16 if vocab_size <= 2**16 else np.uint32


def _settings(vocab_size: int, bpe_max_chars: int) -> dict[str, object]:
    """Everything besides the corpus that changes the tokens; part of the cache key."""
    return {
        "model": "bpe",
        "pre_tokenizer": "byte_level(add_prefix_space=False,use_regex=True)",
        "vocab_size": vocab_size,
        "special_tokens": [EOT],
        "bpe_max_chars": bpe_max_chars,
        "tokenizers_version": tokenizers.__version__,
    }


def _capped(texts: Iterable[str], max_chars: int, progress: Progress | None) -> Iterator[str]:
    """The first ``max_chars`` characters of ``texts`` (the last document is cut)."""
    used = 0
    for text in texts:
        if used >= max_chars:
            return
        text = text[: max_chars - used]
        used += len(text)
        if progress:
            progress("bpe", used)
        yield text


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int,
    max_chars: int = DEFAULT_BPE_MAX_CHARS,
    progress: Progress | None = None,
) -> Tokenizer:
    """Train a byte-level BPE on at most ``max_chars`` characters of ``texts``.

    The whole byte alphabet is seeded, so any text (even unseen scripts) round-trips.
    """
    if vocab_size < _MIN_VOCAB:
        raise ValueError(f"vocab_size must be at least {_MIN_VOCAB} (256 bytes + {EOT}), got {vocab_size}")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_capped(texts, max_chars, progress), trainer)
    if tokenizer.token_to_id(EOT) != EOT_ID:
        raise RuntimeError(f"{EOT} got id {tokenizer.token_to_id(EOT)}, expected {EOT_ID}")
    return _treat_eot_in_text_as_text(tokenizer)


def _treat_eot_in_text_as_text(tokenizer: Tokenizer) -> Tokenizer:
    """A literal "<|endoftext|>" inside a document is data, not a separator.

    This flag is not saved in tokenizer.json, so it is set after every load too.
    """
    tokenizer.encode_special_tokens = True
    return tokenizer


def _batches(texts: Iterable[str]) -> Iterator[list[str]]:
    """Group documents into lists of about ``_BATCH_CHARS`` characters."""
    batch: list[str] = []
    size = 0
    for text in texts:
        batch.append(text)
        size += len(text)
        if size >= _BATCH_CHARS:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def _write_tokens(
    tokenizer: Tokenizer,
    texts: Iterable[str],
    out: BinaryIO,
    dtype: type[np.unsignedinteger],
    max_tokens: int | None,
    stage: Split,
    progress: Progress | None,
) -> tuple[int, int]:
    """Encode ``texts`` into ``out`` as ``EOT doc EOT doc ... EOT``; return (tokens, text bytes)."""
    eot = np.array([EOT_ID], dtype=dtype)
    out.write(eot.tobytes())
    n_tokens, n_bytes = 1, 0
    for batch in _batches(texts):
        encodings = tokenizer.encode_batch(batch, add_special_tokens=False)
        pieces = []
        for text, encoding in zip(batch, encodings, strict=True):
            pieces += [np.asarray(encoding.ids, dtype=dtype), eot]
            n_bytes += len(text.encode("utf-8"))
        chunk = np.concatenate(pieces)
        if max_tokens is not None and n_tokens + len(chunk) >= max_tokens:
            out.write(chunk[: max_tokens - n_tokens].tobytes())
            n_tokens = max_tokens
            break
        out.write(chunk.tobytes())
        n_tokens += len(chunk)
        if progress:
            progress(stage, n_tokens)
    if progress:
        progress(stage, n_tokens)
    return n_tokens, n_bytes


def _build(
    corpus: Corpus,
    vocab_size: int,
    bpe_max_chars: int,
    max_train_tokens: int | None,
    target: Path,
    progress: Progress | None,
) -> None:
    """Train, encode and write every cache file into the (temporary) folder ``target``."""
    tokenizer = train_tokenizer(corpus.iter_texts("train"), vocab_size, bpe_max_chars, progress)
    tokenizer.save(str(target / "tokenizer.json"))
    dtype = token_dtype(vocab_size)
    counts: dict[str, tuple[int, int]] = {}
    for split in ("train", "validation"):
        cap = max_train_tokens if split == "train" else None
        with open(target / f"{split}.bin", "wb") as out:
            counts[split] = _write_tokens(tokenizer, corpus.iter_texts(split), out, dtype, cap, split, progress)
    val_tokens, val_bytes = counts["validation"]
    if val_bytes == 0:
        raise RuntimeError(f"corpus {corpus.name}: the validation split is empty")
    meta = {
        "format_version": FORMAT_VERSION,
        "corpus_name": corpus.name,
        "corpus_identity": corpus.identity,
        "settings": _settings(vocab_size, bpe_max_chars),
        "max_train_tokens": max_train_tokens,
        "dtype": np.dtype(dtype).name,
        "trained_vocab_size": tokenizer.get_vocab_size(),
        "train_tokens": counts["train"][0],
        "validation_tokens": val_tokens,
        "validation_bytes": val_bytes,
        "bytes_per_token": val_bytes / val_tokens,
        "checksums": _checksums(target),
    }
    (target / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


class CorruptCache(RuntimeError):
    """A token cache whose files do not match what was written (or cannot be read)."""


def _checksums(folder: Path) -> dict[str, str]:
    """BLAKE2b of each cache file (about 1 GB/s: a full LM1B cache in a couple of seconds)."""
    sums = {}
    for name in _FILES:
        digest = hashlib.blake2b(digest_size=16)
        with open(folder / name, "rb") as handle:
            while block := handle.read(1 << 22):
                digest.update(block)
        sums[name] = digest.hexdigest()
    return sums


def _verify(path: Path, meta: dict) -> None:
    """Check the files against their checksums once per process; seal an older cache."""
    if path in _VERIFIED:
        return
    found = _checksums(path)
    if "checksums" not in meta:  # written before checksums: trusted once, sealed from now on
        sealed = path / f".meta-{os.getpid()}.json"
        sealed.write_text(json.dumps({**meta, "checksums": found}, indent=2, sort_keys=True) + "\n")
        os.replace(sealed, path / "meta.json")
    elif found != meta["checksums"]:
        damaged = sorted(name for name in _FILES if found[name] != meta["checksums"].get(name))
        raise CorruptCache(f"corrupt token cache {path}: {', '.join(damaged)} differ from their checksums")
    _VERIFIED.add(path)


def _load(path: Path) -> TokenizedCorpus:
    """Open a finished cache folder: JSON + two memory maps, no tokenization."""
    try:
        meta = json.loads((path / "meta.json").read_text())
        _verify(path, meta)
        dtype = np.dtype(meta["dtype"])
        train = np.memmap(path / "train.bin", dtype=dtype, mode="r")
        validation = np.memmap(path / "validation.bin", dtype=dtype, mode="r")
        tokenizer = _treat_eot_in_text_as_text(Tokenizer.from_file(str(path / "tokenizer.json")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CorruptCache(f"corrupt token cache {path} ({type(exc).__name__}: {exc})") from exc
    if len(train) != meta["train_tokens"] or len(validation) != meta["validation_tokens"]:
        raise CorruptCache(f"corrupt token cache {path}: token counts differ from meta.json")
    return TokenizedCorpus(
        train=train,
        validation=validation,
        tokenizer=tokenizer,
        bytes_per_token=float(meta["bytes_per_token"]),
        vocab_size=int(meta["settings"]["vocab_size"]),
        corpus_identity=meta["corpus_identity"],
        cache_dir=path,
    )


def load_tokenized(
    corpus_spec: str | Corpus = "default",
    vocab_size: int = 4096,
    max_train_tokens: int | None = None,
    progress: Progress | None = None,
    *,
    bpe_max_chars: int = DEFAULT_BPE_MAX_CHARS,
) -> TokenizedCorpus:
    """Tokenize a corpus (a spec for ``open_corpus`` or a Corpus) or load it from the cache.

    The cache lives at ``cache_root()/tokenized/<key>``, key = sha256 of (corpus identity,
    tokenizer settings, max_train_tokens, format version). It is built in a temporary
    folder and renamed into place, so a crash never leaves half a cache and concurrent
    builders of the same key agree on one result. ``max_train_tokens`` truncates the train
    stream (a quick default on a laptop); the BPE itself trains on at most
    ``bpe_max_chars`` characters of the train split.
    """
    if max_train_tokens is not None and max_train_tokens < 1:
        raise ValueError(f"max_train_tokens must be positive or None, got {max_train_tokens}")
    corpus = open_corpus(corpus_spec) if isinstance(corpus_spec, str) else corpus_spec
    key_payload = [corpus.identity, _settings(vocab_size, bpe_max_chars), max_train_tokens, FORMAT_VERSION]
    key = hashlib.sha256(json.dumps(key_payload, sort_keys=True).encode()).hexdigest()[:16]
    parent = cache_root() / "tokenized"
    final = parent / key
    if final.is_dir():
        try:
            return _load(final)
        except CorruptCache as error:  # set aside (kept for a post-mortem) and rebuilt
            aside = parent / f".damaged-{key}-{os.getpid()}-{int(time.time())}"
            print(f"archevo: {error}; rebuilding it (the damaged copy is kept as {aside.name})", file=sys.stderr)
            try:
                os.rename(final, aside)
            except OSError:
                pass  # another process set it aside first
    parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=parent))
    try:
        _build(corpus, vocab_size, bpe_max_chars, max_train_tokens, scratch, progress)
        try:
            os.rename(scratch, final)
        except OSError:
            if not final.is_dir():  # not a lost race with another builder: a real failure
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return _load(final)
