"""The docs' links into the code: a link to a line (`[`name`](../algos/x.py#L12)`) must land
on the line that defines the name it shows, so a moved function cannot leave a stale link."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\[`([^`]+)`(?:, `[^`]+`)*\]\(([^)#]+\.py)#L(\d+)\)")


def line_links() -> list[tuple[str, str, Path, int]]:
    out = []
    for doc in sorted([ROOT / "README.md", *ROOT.glob("docs/**/*.md")]):
        for name, target, line in LINK.findall(doc.read_text()):
            out.append((str(doc.relative_to(ROOT)), name, (doc.parent / target).resolve(), int(line)))
    return out


@pytest.mark.parametrize("doc, name, path, line", line_links())
def test_a_docs_line_link_lands_on_the_definition_it_names(doc, name, path, line):
    assert path.is_file(), f"{doc}: {path} does not exist"
    identifier = name.split(".")[-1].split("(")[0]
    text = path.read_text().splitlines()[line - 1]
    assert re.search(rf"\b(def|class)\s+{re.escape(identifier)}\b|^{re.escape(identifier)}\s*[:=]", text.strip()), \
        f"{doc}: {name} -> {path.name}:{line} is {text.strip()!r}"
