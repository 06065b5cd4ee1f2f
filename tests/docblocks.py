"""Code blocks of README.md and docs/*.md, as tests read them to run them word for word.

A ```sh block is a promise that it runs as written: some test must read it with :func:`doc_block`
(with constant arguments, so tests/test_docs.py can find every call without running it and fail on a
block nobody runs). A block that is only an illustration (it needs an AWS account, Docker, a
cluster) is fenced ```shell instead."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.S | re.M)
DOCUMENTS = ("README.md", "benchmarks/README.md", "docs/*.md")


def documents() -> list[Path]:
    """Every Markdown file whose sh blocks must be run by a test."""
    return sorted({path for pattern in DOCUMENTS for path in ROOT.glob(pattern)})


def blocks(path: Path, info: str = "sh") -> list[tuple[int, str]]:
    """(offset of the fence, body) of each block fenced ```<info> in ``path``."""
    text = path.read_text(encoding="utf-8")
    return [(match.start(), match.group(2)) for match in FENCE.finditer(text) if match.group(1).strip() == info]


def locate(document: str, after: str, number: int = 0) -> int:
    """The fence offset of the ``number``-th sh block after the first occurrence of ``after``."""
    path = ROOT / document
    start = path.read_text(encoding="utf-8").index(after)
    return [offset for offset, _ in blocks(path) if offset >= start][number]


def doc_block(document: str, after: str, number: int = 0) -> str:
    """The ``number``-th ```sh block after the text ``after`` in ``document`` (a path from the
    repository root), as a reader copies it."""
    offset = locate(document, after, number)
    return dict(blocks(ROOT / document))[offset]
