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


def declared_switches() -> list[str]:
    """`algo.<field>` / `env.<field>` of every fidelity switch the algorithm and family
    configs declare (envs/fidelity.py); families whose simulator module cannot be imported
    here are skipped by family_module's import error."""
    from algos.common.registry import ALGORITHMS, config_class
    from envs import FAMILIES, family_module
    from envs.fidelity import switches

    names = []
    for algo in ALGORITHMS:
        names += [f"algo.{name}" for name in switches(config_class(algo)())]
    for family in FAMILIES:
        try:
            config = family_module(family).Config()
        except ImportError:
            continue
        names += [f"env.{name}" for name in switches(config)]
    return sorted(set(names))


@pytest.mark.parametrize("switch", declared_switches())
def test_every_fidelity_switch_has_a_ledger_row(switch):
    """docs/fidelity.md names each switch in its summary table (the switch column)."""
    summary = (ROOT / "docs" / "fidelity.md").read_text().split("## Off-policy")[0]
    rows = [line for line in summary.splitlines() if line.startswith("| ") and f"`{switch}" in line]
    assert rows, f"{switch} has no row in docs/fidelity.md's summary table"
