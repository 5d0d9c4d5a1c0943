"""Corpora: LM1B reading (shard selection, the held-out decoy, path forms), default and text splits.

The LM1B fixture follows reference/data.md §5 and contains only invented sentences.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from evaluator import corpora
from evaluator.corpora import CorpusError, lm1b_corpus, open_corpus

# The fixture has 2 shards / 2 pieces, not 99 / 50: that warning is tested once, below.
pytestmark = pytest.mark.filterwarnings("ignore:LM1B at")

TRAIN_1 = [
    "The city council said on Tuesday it would review the plan .",
    "Shares in the company 's parent rose 3.5 percent to $ 12.40 .",
    '" We don \'t expect any change , " a spokesman said .',
]
TRAIN_2 = [
    "LONDON ( Reuters ) - Prices fell for a second week .",
    "It cost £ 40 -- far more than expected .",
]
HELDOUT_0 = ["• Officials declined to comment .", "The U.N. panel met in Geneva on Friday ."]
HELDOUT_1 = ["Ms. Ortega wasn 't available for comment , her office said ."]
DECOY_MARKER = "DECOY-SENTENCE-MUST-NEVER-BE-READ qzx ."


def make_lm1b(parent: Path) -> Path:
    """Write the made-up LM1B tree under ``parent``; return the top folder."""
    top = parent / corpora.LM1B_TOP
    train = top / corpora.LM1B_TRAIN_DIR
    held = top / corpora.LM1B_HELDOUT_DIR
    train.mkdir(parents=True)
    held.mkdir()
    # Written out of order (and with blank/padded lines) so that sorting and stripping are tested.
    (train / "news.en-00002-of-00100").write_text("\n".join(TRAIN_2) + "\n\n", encoding="utf-8")
    (train / "news.en-00001-of-00100").write_text("  " + "\n".join(TRAIN_1) + " \n", encoding="utf-8")
    (train / "news.en-00003-of-00100.bak").write_text(DECOY_MARKER + "\n", encoding="utf-8")
    (held / "news.en.heldout-00001-of-00050").write_text("\n".join(HELDOUT_1) + "\n", encoding="utf-8")
    (held / "news.en.heldout-00000-of-00050").write_text("\n".join(HELDOUT_0) + "\n", encoding="utf-8")
    # The trap: the pre-split held-out shard, named like a training shard.
    decoy = HELDOUT_0 + HELDOUT_1 + [DECOY_MARKER]
    (held / "news.en-00000-of-00100").write_text("\n".join(decoy) + "\n", encoding="utf-8")
    (top / "README").write_text(DECOY_MARKER + "\n", encoding="utf-8")
    return top


def make_tar(top: Path, dest: Path) -> Path:
    """Pack the tree like the original archive: the top folder, then its files in sorted order."""
    with tarfile.open(dest, "w:gz") as archive:
        archive.add(top, arcname=top.name, recursive=False)
        for path in sorted(top.rglob("*")):
            archive.add(path, arcname=path.relative_to(top.parent).as_posix(), recursive=False)
    return dest


@pytest.fixture
def lm1b_top(tmp_path: Path) -> Path:
    return make_lm1b(tmp_path / "data")


def splits(corpus: corpora.Corpus) -> tuple[list[str], list[str]]:
    return list(corpus.iter_texts("train")), list(corpus.iter_texts("validation"))


# --------------------------------------------------------------------------- LM1B


def test_lm1b_folder_selects_shards_in_order(lm1b_top: Path) -> None:
    train, validation = splits(lm1b_corpus(lm1b_top))
    assert train == TRAIN_1 + TRAIN_2
    assert validation == HELDOUT_0


def test_lm1b_heldout_all(lm1b_top: Path) -> None:
    first = lm1b_corpus(lm1b_top, heldout="first")
    every = lm1b_corpus(lm1b_top, heldout="all")
    assert list(every.iter_texts("validation")) == HELDOUT_0 + HELDOUT_1
    assert first.identity != every.identity


def test_lm1b_decoy_is_never_read(lm1b_top: Path, tmp_path: Path) -> None:
    tar = make_tar(lm1b_top, tmp_path / "lm1b.tar.gz")
    for source in (lm1b_top, lm1b_top.parent, tar):
        for heldout in ("first", "all"):
            train, validation = splits(lm1b_corpus(source, heldout=heldout))  # type: ignore[arg-type]
            assert DECOY_MARKER not in train + validation
            assert len(train) == 5
            assert len(validation) == (2 if heldout == "first" else 3)


def test_lm1b_path_forms_agree(lm1b_top: Path, tmp_path: Path) -> None:
    tar = make_tar(lm1b_top, tmp_path / "lm1b.tar.gz")
    for heldout in ("first", "all"):
        results = [splits(lm1b_corpus(src, heldout=heldout)) for src in (lm1b_top, lm1b_top.parent, tar)]  # type: ignore[arg-type]
        assert results[0] == results[1] == results[2]
    assert lm1b_corpus(lm1b_top).identity == lm1b_corpus(lm1b_top.parent).identity
    assert open_corpus(f"lm1b:{tar}").identity.startswith("lm1b:")


def test_lm1b_identity_tracks_files(lm1b_top: Path) -> None:
    before = lm1b_corpus(lm1b_top).identity
    assert lm1b_corpus(lm1b_top).identity == before
    shard = lm1b_top / corpora.LM1B_TRAIN_DIR / "news.en-00002-of-00100"
    shard.write_text(shard.read_text() + "A new invented sentence .\n")
    assert lm1b_corpus(lm1b_top).identity != before


def test_lm1b_warns_on_unexpected_shard_counts(lm1b_top: Path, tmp_path: Path) -> None:
    with pytest.warns(UserWarning, match="2 training shards, expected 99"):
        lm1b_corpus(lm1b_top)
    tar = make_tar(lm1b_top, tmp_path / "lm1b.tar.gz")
    with pytest.warns(UserWarning, match="2 held-out pieces, expected 50"):
        list(lm1b_corpus(tar).iter_texts("validation"))


def test_lm1b_tar_out_of_order_warns(lm1b_top: Path, tmp_path: Path) -> None:
    tar = tmp_path / "shuffled.tar.gz"
    with tarfile.open(tar, "w:gz") as archive:
        for path in sorted(lm1b_top.rglob("*"), reverse=True):
            archive.add(path, arcname=path.relative_to(lm1b_top.parent).as_posix(), recursive=False)
    with pytest.warns(UserWarning, match="out of shard order"):
        train = list(lm1b_corpus(tar).iter_texts("train"))
    assert train == TRAIN_2 + TRAIN_1


def test_lm1b_clear_errors(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CorpusError, match=f"no LM1B found at {empty}: expected"):
        lm1b_corpus(empty)
    with pytest.raises(CorpusError, match="does not exist"):
        lm1b_corpus(tmp_path / "missing")
    not_tar = tmp_path / "notes.txt"
    not_tar.write_text("hello\n")
    with pytest.raises(CorpusError, match="not a readable .tar.gz"):
        lm1b_corpus(not_tar)
    other = tmp_path / "other"
    (other / "docs").mkdir(parents=True)
    (other / "docs" / "a.txt").write_text("hello\n")
    other_tar = tmp_path / "other.tar.gz"
    with tarfile.open(other_tar, "w:gz") as archive:
        archive.add(other, arcname="other")
    with pytest.raises(CorpusError, match=f"no LM1B found at {other_tar}"):
        lm1b_corpus(other_tar)


def test_lm1b_missing_first_piece(lm1b_top: Path) -> None:
    (lm1b_top / corpora.LM1B_HELDOUT_DIR / "news.en.heldout-00000-of-00050").unlink()
    with pytest.raises(CorpusError, match="piece 00000 is missing"):
        lm1b_corpus(lm1b_top)
    assert list(lm1b_corpus(lm1b_top, heldout="all").iter_texts("validation")) == HELDOUT_1


def test_unknown_spec() -> None:
    expected = "unknown corpus 'xyz': expected default, lm1b:PATH or text:GLOB"
    with pytest.raises(CorpusError) as info:
        open_corpus("xyz")
    assert str(info.value) == expected
    for spec in ("lm1b:", "text:", "wiki:foo", ""):
        with pytest.raises(CorpusError, match="unknown corpus"):
            open_corpus(spec)
    with pytest.raises(ValueError, match="unknown split"):
        open_corpus("default").iter_texts("test")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- default


def test_default_split_is_disjoint_by_file(monkeypatch: pytest.MonkeyPatch) -> None:
    # Yield relative paths instead of file contents, to see which file went where.
    monkeypatch.setattr(corpora, "_read_documents", lambda root, rels: iter(rels))
    corpus = open_corpus("default")
    train, validation = splits(corpus)
    assert train and validation
    assert not set(train) & set(validation)
    assert 0.02 < len(validation) / (len(train) + len(validation)) < 0.10
    for rel in train + validation:
        parts = rel.split("/")
        assert parts[-1].endswith(".py")
        assert not set(parts[:-1]) & {"test", "tests", "idle_test", "site-packages"}, rel
    for rel in validation:
        assert int(hashlib.sha256(rel.encode()).hexdigest(), 16) % 20 == 0
    assert corpus.identity == open_corpus("default").identity
    assert corpus.identity.startswith("default:")


def test_default_yields_real_text() -> None:
    first = next(open_corpus("default").iter_texts("validation"))
    assert isinstance(first, str) and first


# --------------------------------------------------------------------------- text


def write_files(root: Path, count: int) -> list[Path]:
    paths = []
    for i in range(count):
        path = root / f"sub{i % 3}" / f"doc{i:02d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"Document number {i} of the invented test corpus.\n", encoding="utf-8")
        paths.append(path)
    return paths


def test_text_glob_split_by_file(tmp_path: Path) -> None:
    write_files(tmp_path / "a", 30)
    corpus = open_corpus(f"text:{tmp_path / 'a'}/**/*.txt")
    train, validation = splits(corpus)
    assert train and validation
    assert len(train) + len(validation) == 30
    assert not set(train) & set(validation)
    # The split hashes paths relative to the glob's base, so moving the folder keeps it.
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    moved = open_corpus(f"text:{tmp_path / 'b'}/**/*.txt")
    assert splits(moved) == (train, validation)


def test_text_glob_few_files_keeps_both_sides(tmp_path: Path) -> None:
    write_files(tmp_path, 2)
    train, validation = splits(open_corpus(f"text:{tmp_path}/**/*.txt"))
    assert len(train) == len(validation) == 1


def test_text_single_file_splits_lines(tmp_path: Path) -> None:
    lines = [f"line {i}\n" for i in range(100)]
    path = tmp_path / "one.txt"
    path.write_text("".join(lines), encoding="utf-8")
    train, validation = splits(open_corpus(f"text:{path}"))
    assert train == ["".join(lines[:95])]
    assert validation == ["".join(lines[95:])]
    short = tmp_path / "short.txt"
    short.write_text("only one line\n")
    with pytest.raises(CorpusError, match="need at least 2"):
        list(open_corpus(f"text:{short}").iter_texts("train"))


def test_text_identity_tracks_files(tmp_path: Path) -> None:
    (first,) = write_files(tmp_path, 1)
    spec = f"text:{tmp_path}/**/*.txt"
    before = open_corpus(spec).identity
    assert open_corpus(spec).identity == before
    first.write_text("changed and longer content\nsecond line\n")
    os.utime(first, ns=(1, 1))
    assert open_corpus(spec).identity != before


def test_text_no_match(tmp_path: Path) -> None:
    pattern = f"{tmp_path}/*.nothing"
    with pytest.raises(CorpusError, match="no files match") as info:
        open_corpus(f"text:{pattern}")
    assert pattern in str(info.value)
