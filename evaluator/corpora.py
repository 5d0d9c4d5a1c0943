"""Corpora: named sources of text with a deterministic train/validation split.

A corpus yields *documents* (strings). Three kinds exist (see reference/data.md):

- ``default``: the running interpreter's standard-library ``*.py`` source, so that a
  campaign runs offline with no download and no third-party text in the repository;
- ``lm1b:PATH``: a user-supplied copy of the One Billion Word Benchmark (folder, its
  parent, or the original ``.tar.gz``), one sentence per document;
- ``text:GLOB``: the user's own text files.

Every corpus carries an ``identity`` that changes when its underlying files change, because
results are comparable only within one identity (distributions ship different stdlibs).
"""

from __future__ import annotations

import glob
import hashlib
import itertools
import json
import os
import platform
import re
import sysconfig
import tarfile
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Split = Literal["train", "validation"]
Heldout = Literal["first", "all"]

LM1B_TOP = "1-billion-word-language-modeling-benchmark-r13output"
LM1B_TRAIN_DIR = "training-monolingual.tokenized.shuffled"
LM1B_HELDOUT_DIR = "heldout-monolingual.tokenized.shuffled"
# Exact patterns: a looser ``news.en-*`` in the held-out folder would read the decoy
# ``news.en-00000-of-00100``, which duplicates the 50 held-out pieces (data.md §1.2).
LM1B_TRAIN_RE = re.compile(r"^news\.en-(\d{5})-of-00100$")
LM1B_HELDOUT_RE = re.compile(r"^news\.en\.heldout-(\d{5})-of-00050$")
LM1B_EXPECTED_TRAIN = 99
LM1B_EXPECTED_HELDOUT = 50

# Any directory with one of these names is skipped by the default corpus: test suites are
# not representative code and many distributions strip them, which would change the data.
_EXCLUDED_DIRS = frozenset({"test", "tests", "idle_test", "idlelib", "site-packages", "__pycache__"})

_VALIDATION_MODULUS = 20  # a file goes to validation iff sha256(rel path) % 20 == 0 (≈5%)


class CorpusError(ValueError):
    """A corpus spec or path that cannot be read as the requested corpus."""


@dataclass(frozen=True)
class Corpus:
    """A named text source; ``train``/``validation`` return fresh document iterators."""

    name: str
    identity: str
    train: Callable[[], Iterator[str]] = field(repr=False, compare=False)
    validation: Callable[[], Iterator[str]] = field(repr=False, compare=False)

    def iter_texts(self, split: Split) -> Iterator[str]:
        """Yield the documents of ``split`` ("train" or "validation") in a fixed order."""
        if split == "train":
            return self.train()
        if split == "validation":
            return self.validation()
        raise ValueError(f"unknown split {split!r}: expected 'train' or 'validation'")


def open_corpus(spec: str, *, heldout: Heldout = "first") -> Corpus:
    """Parse ``default`` | ``lm1b:PATH`` | ``text:GLOB`` into a Corpus.

    ``heldout`` only applies to LM1B: "first" is the standard test piece 00000, "all" the
    50 pieces that TFDS and Hugging Face call "test".
    """
    if spec == "default":
        return default_corpus()
    kind, sep, arg = spec.partition(":")
    if sep and arg and kind == "lm1b":
        return lm1b_corpus(arg, heldout=heldout)
    if sep and arg and kind == "text":
        return text_corpus(arg)
    raise CorpusError(f"unknown corpus {spec!r}: expected default, lm1b:PATH or text:GLOB")


# --------------------------------------------------------------------------- helpers


def _short_hash(payload: object) -> str:
    """16 hex digits of sha256 over a canonical JSON rendering of ``payload``."""
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _is_validation_file(rel_path: str) -> bool:
    """The by-file split rule: stable across machines because it hashes the relative path."""
    digest = hashlib.sha256(rel_path.encode("utf-8")).hexdigest()
    return int(digest, 16) % _VALIDATION_MODULUS == 0


def _split_files(rel_paths: list[str]) -> tuple[list[str], list[str]]:
    """Split sorted relative paths by the hash rule, keeping both sides non-empty.

    With few files the 5% rule often selects none, so the file with the smallest hash is
    then moved to validation (and, symmetrically, the largest back to train).
    """
    train = [p for p in rel_paths if not _is_validation_file(p)]
    validation = [p for p in rel_paths if _is_validation_file(p)]
    if len(rel_paths) >= 2:
        by_hash = sorted(rel_paths, key=lambda p: hashlib.sha256(p.encode("utf-8")).hexdigest())
        if not validation:
            validation = [by_hash[0]]
            train = [p for p in train if p != by_hash[0]]
        elif not train:
            train = [by_hash[-1]]
            validation = [p for p in validation if p != by_hash[-1]]
    return train, validation


def _read_documents(root: Path, rel_paths: list[str]) -> Iterator[str]:
    """Yield each file's text (undecodable bytes replaced), skipping empty files."""
    for rel in rel_paths:
        text = (root / rel).read_text(encoding="utf-8", errors="replace")
        if text:
            yield text


def _sentences(stream: Iterable[bytes]) -> Iterator[str]:
    """LM1B lines: bytes split on b"\\n", decoded as UTF-8 (replace), stripped, non-empty."""
    for raw in stream:
        line = raw.decode("utf-8", errors="replace").strip()
        if line:
            yield line


# --------------------------------------------------------------------------- default


def default_corpus() -> Corpus:
    """The interpreter's stdlib ``*.py`` files minus every test directory, split by file."""
    root = Path(sysconfig.get_paths()["stdlib"])
    entries: list[tuple[str, int]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in _EXCLUDED_DIRS]
        for name in filenames:
            if name.endswith(".py"):
                full = Path(dirpath) / name
                entries.append((full.relative_to(root).as_posix(), full.stat().st_size))
    if not entries:
        raise CorpusError(f"default corpus: no *.py files under the standard library {root}")
    entries.sort()
    rel_paths = [rel for rel, _ in entries]
    version = f"{platform.python_implementation().lower()}-{platform.python_version()}"
    identity = f"default:{version}:{_short_hash(entries)}"
    train, validation = _split_files(rel_paths)
    return Corpus(
        name="default",
        identity=identity,
        train=lambda: _read_documents(root, train),
        validation=lambda: _read_documents(root, validation),
    )


# --------------------------------------------------------------------------- text


def _glob_base(pattern: str) -> Path:
    """The directory part of a glob before its first wildcard: paths are hashed relative
    to it so the split does not depend on where the user's folder lives."""
    parts = Path(pattern).parts
    fixed: list[str] = []
    for part in parts[:-1]:
        if any(ch in part for ch in "*?["):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def text_corpus(pattern: str) -> Corpus:
    """User text files matched by ``pattern`` (``**`` recursive); one file = one document.

    Files are split by the hash rule; a single file is split by lines instead (its last 5%
    of lines, at least one, go to validation).
    """
    pattern = os.path.expanduser(pattern)
    files = sorted(Path(os.path.abspath(p)) for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
    if not files:
        raise CorpusError(f"text corpus: no files match {pattern!r}")
    base = Path(os.path.abspath(_glob_base(pattern)))
    rel_paths = [Path(os.path.relpath(f, base)).as_posix() for f in files]
    stats = [f.stat() for f in files]
    identity = "text:" + _short_hash(
        [[str(f.resolve()), s.st_size, s.st_mtime_ns] for f, s in zip(files, stats, strict=True)]
    )
    if len(files) == 1:
        return _single_file_corpus(pattern, files[0], identity)
    train, validation = _split_files(rel_paths)
    return Corpus(
        name=f"text:{pattern}",
        identity=identity,
        train=lambda: _read_documents(base, train),
        validation=lambda: _read_documents(base, validation),
    )


def _single_file_corpus(pattern: str, path: Path, identity: str) -> Corpus:
    """One file: train = its first ≈95% of lines, validation = the rest (one document each)."""

    def part(split: Split) -> Iterator[str]:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
        if len(lines) < 2:
            raise CorpusError(f"text corpus: {path} has {len(lines)} line(s); need at least 2 to split")
        cut = len(lines) - max(1, len(lines) // _VALIDATION_MODULUS)
        text = "".join(lines[:cut] if split == "train" else lines[cut:])
        if text:
            yield text

    return Corpus(
        name=f"text:{pattern}",
        identity=identity,
        train=lambda: part("train"),
        validation=lambda: part("validation"),
    )


# --------------------------------------------------------------------------- LM1B


def _lm1b_error(path: Path) -> CorpusError:
    return CorpusError(
        f"no LM1B found at {path}: expected the folder {LM1B_TOP}/ (with {LM1B_TRAIN_DIR}/ "
        f"and {LM1B_HELDOUT_DIR}/), its parent, or the original .tar.gz"
    )


def _numbered(folder: Path, pattern: re.Pattern[str]) -> list[tuple[int, Path]]:
    """Files in ``folder`` whose name matches ``pattern`` exactly, sorted by shard number."""
    found = []
    for entry in folder.iterdir():
        match = pattern.match(entry.name)
        if match and entry.is_file():
            found.append((int(match.group(1)), entry))
    return sorted(found)


def _warn_counts(n_train: int | None, n_heldout: int | None, where: Path) -> None:
    """LM1B has 99 training shards and 50 held-out pieces; anything else is worth a warning."""
    if n_train is not None and n_train != LM1B_EXPECTED_TRAIN:
        warnings.warn(f"LM1B at {where}: {n_train} training shards, expected {LM1B_EXPECTED_TRAIN}", stacklevel=3)
    if n_heldout is not None and n_heldout != LM1B_EXPECTED_HELDOUT:
        warnings.warn(f"LM1B at {where}: {n_heldout} held-out pieces, expected {LM1B_EXPECTED_HELDOUT}", stacklevel=3)


def lm1b_corpus(path: str | os.PathLike[str], *, heldout: Heldout = "first") -> Corpus:
    """LM1B from the extracted folder, its parent, or the ``.tar.gz``; one sentence per document."""
    if heldout not in ("first", "all"):
        raise ValueError(f"heldout must be 'first' or 'all', got {heldout!r}")
    given = Path(os.path.expanduser(os.fspath(path)))
    if not given.exists():
        raise CorpusError(f"no LM1B found at {given}: the path does not exist")
    if given.is_file():
        return _lm1b_tar_corpus(given, heldout)
    return _lm1b_folder_corpus(given, heldout)


def _lm1b_folder_corpus(given: Path, heldout: Heldout) -> Corpus:
    """An extracted copy: shards are listed up front, so selection and counts are exact."""
    root = next(
        (c for c in (given, given / LM1B_TOP) if (c / LM1B_TRAIN_DIR).is_dir() and (c / LM1B_HELDOUT_DIR).is_dir()),
        None,
    )
    if root is None:
        raise _lm1b_error(given)
    root = root.resolve()
    train_shards = _numbered(root / LM1B_TRAIN_DIR, LM1B_TRAIN_RE)
    heldout_pieces = _numbered(root / LM1B_HELDOUT_DIR, LM1B_HELDOUT_RE)
    if not train_shards or not heldout_pieces:
        raise _lm1b_error(given)
    _warn_counts(len(train_shards), len(heldout_pieces), root)
    if heldout == "first":
        heldout_pieces = [(n, p) for n, p in heldout_pieces if n == 0]
        if not heldout_pieces:
            raise CorpusError(f"LM1B at {root}: held-out piece 00000 is missing (use heldout='all')")
    identity = "lm1b:" + _short_hash(
        {
            "root": str(root),
            "heldout": heldout,
            "train": [[n, p.stat().st_size] for n, p in train_shards],
            "validation": [[n, p.stat().st_size] for n, p in heldout_pieces],
        }
    )

    def read(files: list[tuple[int, Path]]) -> Iterator[str]:
        for _, file in files:
            with open(file, "rb") as stream:
                yield from _sentences(stream)

    return Corpus(
        name=f"lm1b:{root}",
        identity=identity,
        train=lambda: read(train_shards),
        validation=lambda: read(heldout_pieces),
    )


def _lm1b_tar_corpus(tar_path: Path, heldout: Heldout) -> Corpus:
    """The original tarball, streamed once per split.

    Random access into a 1.7 GB gzip is slow, so each split is one sequential pass with
    ``r|gz`` and members are read in archive order; a warning says when that is not shard
    order (the folder form would then order sentences differently). Shard counts are only
    known at the end of a pass.
    """
    tar_path = tar_path.resolve()
    _check_tar_looks_like_lm1b(tar_path)
    stat = tar_path.stat()
    identity = "lm1b:" + _short_hash(
        {"tar": str(tar_path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "heldout": heldout}
    )

    def read(split: Split) -> Iterator[str]:
        folder, pattern = (LM1B_TRAIN_DIR, LM1B_TRAIN_RE) if split == "train" else (LM1B_HELDOUT_DIR, LM1B_HELDOUT_RE)
        count = selected = 0
        previous = -1
        with tarfile.open(tar_path, "r|gz") as archive:
            for member in archive:
                parts = member.name.rstrip("/").split("/")
                match = pattern.match(parts[-1])
                if not (member.isfile() and match and len(parts) >= 2 and parts[-2] == folder):
                    continue
                count += 1
                number = int(match.group(1))
                if number < previous:
                    warnings.warn(
                        f"LM1B at {tar_path}: {member.name} is out of shard order; sentences follow archive order",
                        stacklevel=2,
                    )
                previous = number
                if split == "validation" and heldout == "first" and number != 0:
                    continue
                selected += 1
                stream = archive.extractfile(member)
                assert stream is not None  # isfile() members always have a stream
                yield from _sentences(stream)
        if count == 0:
            raise _lm1b_error(tar_path)
        if selected == 0:
            raise CorpusError(f"LM1B at {tar_path}: held-out piece 00000 is missing (use heldout='all')")
        if split == "train":
            _warn_counts(count, None, tar_path)
        else:
            _warn_counts(None, count, tar_path)

    return Corpus(
        name=f"lm1b:{tar_path}",
        identity=identity,
        train=lambda: read("train"),
        validation=lambda: read("validation"),
    )


def _check_tar_looks_like_lm1b(tar_path: Path, probe: int = 16) -> None:
    """Fail fast (reading a few headers, not the 1.7 GB) on a file that is not the LM1B tarball."""
    known = {LM1B_TOP, LM1B_TRAIN_DIR, LM1B_HELDOUT_DIR}
    try:
        with tarfile.open(tar_path, "r|gz") as archive:
            for member in itertools.islice(archive, probe):
                if known.intersection(member.name.split("/")):
                    return
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise CorpusError(f"no LM1B found at {tar_path}: not a readable .tar.gz ({exc})") from exc
    raise _lm1b_error(tar_path)
