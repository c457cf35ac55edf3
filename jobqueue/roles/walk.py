"""A streaming directory walk for the producer: one file at a time, constant memory in files.

Why not ``os.walk`` or ``Path.rglob``: both follow their own symlink rules, and ``os.walk``
holds a whole directory listing before yielding it. Here ``os.scandir`` streams each
directory; only the paths of directories still to visit are kept (memory grows with the
number of folders, never with the number of files), and at most one directory handle is open
at a time, so a consumer that sleeps (rate limit, backpressure) holds one descriptor.

Globs are matched on the path relative to the root, ``/``-separated, as a whole:
``*`` and ``?`` stay within one folder, ``**`` crosses folders (``**/*.pdf`` is every PDF at
any depth, including the top; ``tmp/**`` is everything under ``tmp``), ``[abc]``/``[!abc]``
are character classes. ``*`` also matches names that start with a dot. An empty include list
means every file. An exclude ending in ``/**`` prunes the folder without reading it.

Symlinks: with ``follow_symlinks`` false (the default) every symlink is skipped, as ``find``
does. With it true, a link is followed only when its real target lies inside the root (one
that leaves it is logged and skipped). Below a followed link, globs see the path through
the link (``current/x.pdf``), while the file is yielded under its real path, so a file
reached by two routes has one path and one idempotency key: the engine enqueues it once.
A link back to a folder above it on the same route (a cycle) is skipped, as ``find -L``
does; a folder reached by two routes that are not a cycle is read once per route.

A file that vanishes or cannot be stat'ed, or a folder that cannot be read, is logged and
reported to ``on_error``; the walk goes on.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from jobqueue.errors import OperationalError
from jobqueue.observe.logs import get_logger

log: Any = get_logger("jobqueue.walk")

ErrorHook = Callable[[str, OSError], None]


@dataclass(frozen=True, slots=True)
class FoundFile:
    """A regular file the walk accepted: its real absolute path and what the key needs."""

    path: str  # real, absolute: the job's filepath and part of its idempotency key
    relpath: str  # relative to the root as the globs matched it (through followed links)
    size: int
    mtime_ns: int


def translate_glob(pattern: str) -> str:
    """A glob (with ``**``) as a regular expression over ``/``-separated relative paths."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i) and (i == 0 or pattern[i - 1] == "/"):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            regex, i = _char_class(pattern, i)
            out.append(regex)
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return "".join(out)


def _char_class(pattern: str, start: int) -> tuple[str, int]:
    """``[...]`` at ``start``: its regex and the index after it (a lone ``[`` is literal)."""
    i = start + 1
    negate = pattern[i : i + 1] in ("!", "^")
    if negate:
        i += 1
    # A ``]`` first in the class is a member, not its end.
    end = pattern.find("]", i + 1 if pattern[i : i + 1] == "]" else i)
    if end < 0:
        return re.escape("["), start + 1
    body = "".join(c if c == "-" else re.escape(c) for c in pattern[i:end])
    return (f"[^/{body}]" if negate else f"[{body}]"), end + 1


def _normalize(pattern: str) -> str:
    """Patterns are relative to the root: ``./x`` and ``/x`` both mean ``x``."""
    while pattern.startswith("./"):
        pattern = pattern[2:]
    return pattern.lstrip("/")


class Globs:
    """Include/exclude rules over relative paths; a path is wanted if some include matches
    it and no exclude does."""

    def __init__(self, include: Sequence[str], exclude: Sequence[str] = ()) -> None:
        self._include = [_compile(p) for p in include] or [_compile("**")]
        self._exclude = [_compile(p) for p in exclude]
        self._prune = [_compile(p[:-3]) for p in map(_normalize, exclude) if p.endswith("/**")]
        if "**" in map(_normalize, exclude):
            self._prune.append(_compile("**"))

    def wants(self, relpath: str) -> bool:
        return any(p.fullmatch(relpath) for p in self._include) and not any(
            p.fullmatch(relpath) for p in self._exclude
        )

    def prunes(self, reldir: str) -> bool:
        """True when every path below ``reldir`` is excluded, so it need not be read."""
        return any(p.fullmatch(reldir) for p in self._prune)


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(translate_glob(_normalize(pattern)), re.DOTALL)


@dataclass(frozen=True, slots=True)
class _Lineage:
    """The (device, inode) of a folder and of every folder above it on this route: a link
    to any of them would loop (the check ``find -L`` makes)."""

    identity: tuple[int, int]
    parent: _Lineage | None

    def contains(self, identity: tuple[int, int]) -> bool:
        node: _Lineage | None = self
        while node is not None:
            if node.identity == identity:
                return True
            node = node.parent
        return False


@dataclass(frozen=True, slots=True)
class _Folder:
    path: str  # real path to open
    rel: str  # path relative to the root as the globs see it ("" for the root)
    lineage: _Lineage | None  # kept only when following symlinks


class Walker:
    """Iterate the regular files under ``root`` that the globs want; see the module doc."""

    def __init__(
        self,
        root: str,
        globs: Globs,
        follow_symlinks: bool = False,
        on_error: ErrorHook | None = None,
    ) -> None:
        self.root = os.path.realpath(root)
        self.globs = globs
        self.follow_symlinks = follow_symlinks
        self.on_error = on_error

    def __iter__(self) -> Iterator[FoundFile]:
        if not os.path.isdir(self.root):
            raise OperationalError(f"scan directory {self.root!r} is not a readable directory")
        stack = [_Folder(self.root, "", self._lineage(os.stat(self.root), None))]
        while stack:
            yield from self._scan(stack.pop(), stack)

    def _lineage(self, st: os.stat_result, parent: _Lineage | None) -> _Lineage | None:
        return _Lineage((st.st_dev, st.st_ino), parent) if self.follow_symlinks else None

    def _scan(self, folder: _Folder, stack: list[_Folder]) -> Iterator[FoundFile]:
        try:
            with os.scandir(folder.path) as entries:
                for entry in entries:
                    found = self._visit(entry, folder, stack)
                    if found is not None:
                        yield found
        except OSError as exc:
            self._skip(folder.path, exc)

    def _visit(
        self, entry: os.DirEntry[str], folder: _Folder, stack: list[_Folder]
    ) -> FoundFile | None:
        rel = f"{folder.rel}/{entry.name}" if folder.rel else entry.name
        try:
            if entry.is_symlink():
                return self._visit_link(entry.path, rel, folder, stack)
            if entry.is_dir(follow_symlinks=False):
                self._push(entry.path, rel, folder, stack)
            elif entry.is_file(follow_symlinks=False) and self.globs.wants(rel):
                st = entry.stat(follow_symlinks=False)
                return FoundFile(entry.path, rel, st.st_size, st.st_mtime_ns)
        except OSError as exc:
            self._skip(entry.path, exc)
        return None

    def _visit_link(
        self, path: str, rel: str, folder: _Folder, stack: list[_Folder]
    ) -> FoundFile | None:
        """Follow a link to its real target, only inside the root (OSError if broken)."""
        if not self.follow_symlinks:
            log.debug("symlink skipped (producer.follow_symlinks is false)", path=path)
            return None
        target = os.path.realpath(path)
        if os.path.commonpath([self.root, target]) != self.root:
            log.warning("symlink leaves the scan directory; skipped", path=path, target=target)
            return None
        st = os.stat(target)
        if stat.S_ISDIR(st.st_mode):
            self._push(target, rel, folder, stack, st)
        elif stat.S_ISREG(st.st_mode) and self.globs.wants(rel):
            return FoundFile(target, rel, st.st_size, st.st_mtime_ns)
        return None

    def _push(
        self,
        path: str,
        rel: str,
        parent: _Folder,
        stack: list[_Folder],
        st: os.stat_result | None = None,
    ) -> None:
        """Queue a folder for reading, unless excluded whole or (following links) a loop."""
        if self.globs.prunes(rel):
            return
        lineage = None
        if parent.lineage is not None:
            st = st or os.stat(path)
            if parent.lineage.contains((st.st_dev, st.st_ino)):
                log.debug("symlink loops back to a folder above it; skipped", path=rel)
                return
            lineage = self._lineage(st, parent.lineage)
        stack.append(_Folder(path, rel, lineage))

    def _skip(self, path: str, exc: OSError) -> None:
        log.warning("cannot read; skipped", path=path, error=exc.strerror or str(exc))
        if self.on_error is not None:
            self.on_error(path, exc)


def walk_paths(
    paths: Sequence[str], globs: Globs, follow_symlinks: bool, on_error: ErrorHook | None = None
) -> Iterator[FoundFile]:
    """Named files as they are (a named symlink is resolved: naming it was the choice), and
    the files under named folders, walked with ``globs`` relative to each folder."""
    for path in paths:
        if os.path.isdir(path):
            yield from Walker(path, globs, follow_symlinks, on_error)
            continue
        real = os.path.realpath(path)
        try:
            st = os.stat(real)
        except OSError as exc:
            log.warning("cannot read; skipped", path=path, error=exc.strerror or str(exc))
            if on_error is not None:
                on_error(path, exc)
            continue
        yield FoundFile(real, os.path.basename(real), st.st_size, st.st_mtime_ns)
