"""Public Dagster APIs only: nothing in the package imports Dagster's private modules (a release
may move them without notice), and the cron expressions we accept are ones Dagster schedules."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from reverse_etl_assets.config.frequency import frequency_to_cron, is_valid_cron

PACKAGE = Path(__file__).resolve().parent.parent / "reverse_etl_assets"
PRIVATE = re.compile(r"\bdagster\w*\._")


def _private_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        found += [f"{path.name}:{node.lineno}: {name}" for name in names if PRIVATE.search(name)]
    return found


def test_nothing_in_the_package_uses_a_private_dagster_module():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 50
    imports = [found for path in files for found in _private_imports(path)]
    assert imports == []
    # Nor by name (importlib, getattr on a module, a string): the text never mentions one.
    mentions = [
        f"{path.relative_to(PACKAGE)}:{number}"
        for path in files
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if PRIVATE.search(line)
    ]
    assert mentions == []


def test_the_check_finds_a_private_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        "import dagster as dg\nfrom dagster._utils.schedules import is_valid_cron_string\n"
        "import dagster_graphql._internal\nfrom dagster import _check\n"
    )
    assert _private_imports(sample) == [
        "sample.py:2: dagster._utils.schedules",
        "sample.py:2: dagster._utils.schedules.is_valid_cron_string",
        "sample.py:3: dagster_graphql._internal",
        "sample.py:4: dagster._check",
    ]


FIELDS = [
    st.sampled_from(["*", "0", "5", "59", "*/15", "0-30", "1,2,3", "60", "L", "?", "1W", "x", "*/0"]),
    st.sampled_from(["*", "0", "23", "*/6", "9-17", "24", "1,13", "?"]),
    st.sampled_from(["*", "1", "15", "31", "29", "30", "L", "1W", "?", "0", "32", "*/2"]),
    st.sampled_from(["*", "1", "2", "12", "13", "jan", "FEB", "1-6", "*/3"]),
    st.sampled_from(["*", "0", "6", "7", "1-5", "mon-fri", "MON", "5#3", "5L", "8", "?", "sun,sat"]),
]


@settings(max_examples=400, deadline=None)
@given(st.tuples(*FIELDS), st.sampled_from([" ", "  ", "\t"]))
def test_every_cron_expression_we_accept_is_one_dagster_schedules(fields, separator):
    """Dagster's own validation is the reference (imported here only: the package may not)."""
    from dagster._utils.schedules import is_valid_cron_string

    cron = separator.join(fields)
    if is_valid_cron(cron):
        assert is_valid_cron_string(cron), cron
        assert frequency_to_cron(cron) == " ".join(fields)


def test_cron_expressions_dagster_would_refuse_or_never_fire_are_refused():
    for cron in ["0 0 31 2 *", "0 0 1W * *", "* * * * * *", "@daily", "0 24 * * *"]:
        assert not is_valid_cron(cron), cron
    for cron in ["0 0 29 2 *", "30 6 * * 1-5", "0 0 L * *", "0 0 * * 5#3"]:
        assert is_valid_cron(cron), cron


# The flow, from the leaves up: a unit may import only the units before it (or itself).
LAYERS = [
    ["__init__", "redaction", "logical_types", "sql", "cursor", "state", "demo"],
    ["config"],
    ["source"],
    ["mapping"],
    ["delivery"],
    ["sync_run", "preview"],
    ["defs"],
    ["definitions", "component", "dev_server"],
    ["cli"],
]


def _imported_units(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        modules = [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
        modules += [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
        found |= {
            m.split(".")[1] if "." in m else "__init__" for m in modules if m.split(".")[0] == PACKAGE.name
        }
    return found


def test_no_import_runs_back_up_the_flow():
    """config → source → mapping → delivery → the run → the Dagster shell; leaves under them."""
    rank = {unit: depth for depth, units in enumerate(LAYERS) for unit in units}
    backwards = []
    for path in sorted(PACKAGE.rglob("*.py")):
        unit = path.relative_to(PACKAGE).parts[0].removesuffix(".py")
        assert unit in rank, f"{unit} has no place in LAYERS"
        for imported in _imported_units(path) - {unit}:
            if rank[imported] > rank[unit] or (rank[imported] == rank[unit] and rank[unit] > 0):
                backwards.append(f"{path.relative_to(PACKAGE)} imports {imported}")
    assert backwards == []
