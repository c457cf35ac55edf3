"""The streaming walker: globs with ``**``, symlink rules, odd names, vanished files."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path
from typing import Any

import pytest

from jobqueue.errors import OperationalError
from jobqueue.roles.walk import FoundFile, Globs, Walker

ODD_NAMES = [
    "a file with spaces.pdf",
    "ünïcödé.DOCX",
    "emoji 📄 report.xlsx",
    'quote\'s "double".txt',
    "new\nline.txt",
    "tab\there.txt",
    "*star?[x].txt",
    "[brackets].pdf",
    "-dash-first.txt",
    ".hidden",
    "sub/deep/x.PDF",
    "sub/deep/notes.md",
]
EXCLUDED = ["sub/skip.tmp", "sub/deep/also.tmp", "build/out.txt", "build/nested/out.pdf"]
EXCLUDE_GLOBS = ["**/*.tmp", "build/**"]


def build_odd_tree(tmp_path: Path) -> tuple[Path, set[str]]:
    """A scan root with odd names, excluded files, and every kind of awkward symlink.

    Returns the root and the relative paths a correct walk yields (regular files, not
    excluded). Outside the root lies ``outside/secret.pdf``, reachable only through links.
    """
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.pdf").write_text("secret")
    for rel in ODD_NAMES + EXCLUDED:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"content of {rel}")
    (root / "escape_dir").symlink_to(outside, target_is_directory=True)
    (root / "escape_file.pdf").symlink_to(outside / "secret.pdf")
    (root / "escape_relative").symlink_to("../outside")
    (root / "loop").symlink_to(".", target_is_directory=True)
    (root / "sub" / "up").symlink_to("..", target_is_directory=True)
    (root / "inside_link.pdf").symlink_to("sub/deep/x.PDF")
    (root / "sub_alias").symlink_to("sub", target_is_directory=True)
    return root, set(ODD_NAMES)


def walk(root: Path, follow: bool, exclude: list[str] | None = None) -> tuple[list[FoundFile], int]:
    errors: list[str] = []
    walker = Walker(
        str(root),
        Globs(["**/*"], EXCLUDE_GLOBS if exclude is None else exclude),
        follow_symlinks=follow,
        on_error=lambda path, _exc: errors.append(path),
    )
    return list(walker), len(errors)


@pytest.mark.parametrize("follow", [False, True])
def test_walk_yields_exactly_the_wanted_files(tmp_path: Path, follow: bool) -> None:
    root, expected = build_odd_tree(tmp_path)
    found, errors = walk(root, follow)
    real_root = os.path.realpath(root)
    real = [os.path.relpath(f.path, real_root) for f in found]
    assert set(real) == expected, "no escape, no loop, no exclusions, odd names intact"
    assert errors == 0
    if follow:  # in-root aliases are read again, under their real paths
        aliased = {"inside_link.pdf", *(f"sub_alias/{n[4:]}" for n in expected if n[:4] == "sub/")}
        assert sorted(f.relpath for f in found) == sorted(expected | aliased)
    else:
        assert sorted(real) == sorted(expected), "each file exactly once"
        assert [f.relpath for f in found] == real
    for f in found:
        name = os.path.relpath(f.path, real_root)
        assert Path(f.path).read_text() == f"content of {name}"
        assert f.size == len(f"content of {name}".encode())
        assert f.mtime_ns == os.stat(f.path).st_mtime_ns


def test_broken_and_self_looping_links_are_logged_and_skipped(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "ok.txt").write_text("ok")
    (root / "dangling.txt").symlink_to(root / "missing")
    (root / "self").symlink_to("self")
    (root / "ping").symlink_to("pong")
    (root / "pong").symlink_to("ping")
    found, errors = walk(root, follow=True)
    assert [f.relpath for f in found] == ["ok.txt"]
    assert errors == 4
    found, errors = walk(root, follow=False)
    assert [f.relpath for f in found] == ["ok.txt"]
    assert errors == 0, "without follow_symlinks links are not even looked at"


def test_vanished_file_is_logged_and_the_walk_goes_on(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "later").mkdir(parents=True)
    names = [f"f{i:02d}" for i in range(20)]
    for name in names:
        (root / name).write_text(name)
    (root / "later" / "kept.txt").write_text("kept")
    errors: list[str] = []
    walker = iter(Walker(str(root), Globs(["**"]), on_error=lambda p, _e: errors.append(p)))
    first = next(walker)  # the directory listing is read; its entries are not yet stat'ed
    vanished = [n for n in names if n != first.relpath]
    for name in vanished:
        (root / name).unlink()
    rest = [f.relpath for f in walker]
    assert rest == ["later/kept.txt"]
    assert sorted(os.path.basename(p) for p in errors) == sorted(vanished)


def test_excluded_folder_is_pruned_unread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "root"
    (root / "build" / "deep").mkdir(parents=True)
    (root / "build" / "deep" / "a.txt").write_text("a")
    (root / "keep.txt").write_text("k")
    opened: list[str] = []
    real_scandir = os.scandir

    def spy(path: str) -> Any:
        opened.append(os.path.relpath(path, root))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", spy)
    found, errors = walk(root, follow=False, exclude=["build/**"])
    assert [f.relpath for f in found] == ["keep.txt"] and errors == 0
    assert opened == ["."], "the excluded folder was never opened"


@pytest.mark.parametrize(
    ("pattern", "matches", "misses"),
    [
        ("**/*", ["a", "a/b", "a/b/c.txt", ".hidden", "x/.y"], []),
        ("**/*.pdf", ["a.pdf", "x/a.pdf", "x/y/z.pdf"], ["a.pdf.txt", "pdf", "x/a.PDF"]),
        ("*.pdf", ["a.pdf"], ["x/a.pdf"]),
        ("docs/**", ["docs/a", "docs/x/y"], ["docs", "other/docs/a"]),
        ("**/cache/**", ["cache/a", "x/cache/y/z"], ["cache", "xcache/a"]),
        ("a/**/b.txt", ["a/b.txt", "a/x/b.txt", "a/x/y/b.txt"], ["b.txt", "ab.txt"]),
        ("?.txt", ["a.txt"], ["ab.txt", "/.txt"]),
        ("[ab]*.md", ["a.md", "bxx.md"], ["c.md"]),
        ("[!ab]*.md", ["c.md"], ["a.md"]),
        ("x[", ["x["], ["xa"]),
        ("./top/*", ["top/a"], ["top/a/b"]),
        ("new*", ["new\nline"], []),
    ],
)
def test_globs(pattern: str, matches: list[str], misses: list[str]) -> None:
    globs = Globs([pattern])
    for path in matches:
        assert globs.wants(path), (pattern, path)
    for path in misses:
        assert not globs.wants(path), (pattern, path)


def test_empty_include_means_everything_and_exclude_wins() -> None:
    globs = Globs([], ["**/*.log"])
    assert globs.wants("a/b.txt") and not globs.wants("a/b.log")


def test_missing_root_is_an_operational_error(tmp_path: Path) -> None:
    with pytest.raises(OperationalError, match="not a readable directory"):
        list(Walker(str(tmp_path / "nope"), Globs(["**"])))


def test_walk_memory_does_not_grow_with_the_number_of_files(tmp_path: Path) -> None:
    """Streaming: walking 5k files keeps far less than a list of them would (~1.5 MB)."""
    root = tmp_path / "many"
    root.mkdir()
    for i in range(5000):
        os.close(os.open(root / f"file-with-a-longish-name-{i:06d}.txt", os.O_CREAT | os.O_WRONLY))
    walker = Walker(str(root), Globs(["**/*"]))
    tracemalloc.start()
    try:
        count = sum(1 for _ in walker)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 5000
    assert peak < 100_000, f"peak {peak} bytes: the walk is holding paths"
