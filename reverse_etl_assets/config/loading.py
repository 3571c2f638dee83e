"""Find, parse and validate the YAML file; every problem names the file, line, sync and field."""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from reverse_etl_assets.config.models import (
    CustomerIoDestination,
    HttpEndpointDestination,
    MySQLDatabase,
    OutboxDestination,
    ProjectConfig,
    RateLimit,
    SegmentDestination,
    SQLiteDatabase,
    SyncConfig,
    TlsConfig,
)
from reverse_etl_assets.sql.placeholders import unknown_placeholders, uses_last_sync_time

CONFIG_ENV_VAR = "REVERSE_ETL_CONFIG"
DEFAULT_CONFIG_FILE = "reverse_etl.yaml"
DEMO_CONFIG = Path(__file__).resolve().parent.parent / "demo" / "reverse_etl.yaml"

Loc = tuple[str | int, ...]

_MODELS_BY_KIND: dict[str, dict[str, type[BaseModel]]] = {
    "databases": {"mysql": MySQLDatabase, "sqlite": SQLiteDatabase},
    "destinations": {
        "customerio": CustomerIoDestination,
        "segment": SegmentDestination,
        "http": HttpEndpointDestination,
        "outbox": OutboxDestination,
    },
}


class ConfigError(Exception):
    """The configuration file cannot be used; `problems` holds one located message each."""

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        listing = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"invalid reverse ETL configuration {path}:\n{listing}")


@dataclass(frozen=True)
class LoadedConfig:
    path: Path
    project: ProjectConfig  # with every relative path made absolute against the file's folder
    warnings: list[str] = field(default_factory=list)


def config_path() -> Path:
    """`$REVERSE_ETL_CONFIG`, else `reverse_etl.yaml` in the working directory, else the demo."""
    from_env = os.environ.get(CONFIG_ENV_VAR)
    if from_env:
        return Path(from_env).expanduser().resolve()
    local = Path.cwd() / DEFAULT_CONFIG_FILE
    return local.resolve() if local.exists() else DEMO_CONFIG


def load_config(path: Path | None = None) -> LoadedConfig:
    path = path or config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        hint = f" (set by ${CONFIG_ENV_VAR})" if os.environ.get(CONFIG_ENV_VAR) else ""
        raise ConfigError(path, [f"cannot read the file{hint}: {error.strerror}"]) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(path, [_yaml_error(path, error)]) from None
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(path, [f"{path.name}: expected a mapping with databases, destinations and syncs"])

    locate = _Locator(path, root)
    problems = locate.duplicate_keys()
    try:
        project = ProjectConfig.model_validate(data)
    except ValidationError as error:
        problems += [_pydantic_problem(locate, data, item) for item in error.errors()]
        raise ConfigError(path, problems) from None
    problems += [locate(loc, data, message) for loc, message in _reference_problems(project)]
    if problems:
        raise ConfigError(path, problems)
    warnings = [locate(loc, data, message) for loc, message in _warnings(project)]
    return LoadedConfig(path=path, project=_absolute_paths(project, path.parent), warnings=warnings)


def _absolute_paths(project: ProjectConfig, base: Path) -> ProjectConfig:
    """Relative paths in the file (SQLite files, outbox folders, TLS files) are relative to it."""

    def absolute(path: Path | None) -> Path | None:
        return None if path is None or path.is_absolute() else (base / path).resolve()

    def fix(model: BaseModel, *names: str) -> BaseModel:
        update = {n: absolute(getattr(model, n)) for n in names if absolute(getattr(model, n))}
        return model.model_copy(update=update) if update else model

    databases = {}
    for name, database in project.databases.items():
        if isinstance(database, SQLiteDatabase):
            databases[name] = fix(database, "path")
        else:
            databases[name] = database.model_copy(update={"ssl": fix(database.ssl, "ca", "cert", "key")})
    destinations = {
        name: fix(destination, "path") if isinstance(destination, OutboxDestination) else destination
        for name, destination in project.destinations.items()
    }
    return project.model_copy(update={"databases": databases, "destinations": destinations})


def _reference_problems(project: ProjectConfig) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    seen: set[str] = set()
    for index, sync in enumerate(project.syncs):
        if sync.name in seen:
            problems.append((("syncs", index, "name"), f"another sync is named {sync.name!r}"))
        seen.add(sync.name)
        if sync.database not in project.databases:
            known = ", ".join(project.databases) or "none are declared"
            problems.append(
                (("syncs", index, "database"), f"unknown database {sync.database!r} (declared: {known})")
            )
        for position, name in enumerate(sync.destinations):
            if name not in project.destinations:
                known = ", ".join(project.destinations) or "none are declared"
                problems.append(
                    (
                        ("syncs", index, "destinations", position),
                        f"unknown destination {name!r} (declared: {known})",
                    )
                )
    return problems


def _warnings(project: ProjectConfig) -> list[tuple[Loc, str]]:
    warnings: list[tuple[Loc, str]] = []
    if not project.syncs:
        warnings.append((("syncs",), "no syncs are declared"))
    for index, sync in enumerate(project.syncs):
        if not uses_last_sync_time(sync.query):
            warnings.append(
                (
                    ("syncs", index, "query"),
                    "the query does not use {{last_sync_time}}, so every run sends every row again "
                    "(and every row is a billed call); add e.g. "
                    "WHERE updated_at >= FROM_UNIXTIME({{last_sync_time}})",
                )
            )
        for placeholder in unknown_placeholders(sync.query):
            warnings.append(
                (
                    ("syncs", index, "query"),
                    f"{placeholder} is not a placeholder (the only one is {{{{last_sync_time}}}}); "
                    "it reaches the database as written",
                )
            )
    return warnings


def _pydantic_problem(locate: _Locator, data: dict[str, Any], item: Any) -> str:
    loc: Loc = tuple(item["loc"])
    kind = item["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = _allowed_keys(loc[:-1])
        close = difflib.get_close_matches(key, allowed, n=1)
        message = f"unknown key {key!r}" + (f"; did you mean {close[0]!r}?" if close else "")
        if allowed:
            message += f" (allowed: {', '.join(allowed)})"
    elif kind == "missing":
        message = "this field is required"
    elif kind == "union_tag_invalid":
        message = f"unknown kind {item['input'].get('kind')!r}; expected {item['ctx']['expected_tags']}"
    elif kind == "union_tag_not_found":
        message = f"'kind' is required; one of {', '.join(_MODELS_BY_KIND.get(str(loc[0]), {}))}"
    else:
        text = item["msg"].removeprefix("Value error, ")
        shown = item.get("input")
        got = f" (got {shown!r})" if isinstance(shown, (str, int, float, bool)) else ""
        message = f"{text}{got}"
    return locate(loc, data, message)


def _allowed_keys(container: Loc) -> list[str]:
    model: type[BaseModel] | None = None
    if not container:
        model = ProjectConfig
    elif container[0] == "syncs" and len(container) == 2:
        model = SyncConfig
    elif container[0] in _MODELS_BY_KIND and len(container) >= 3:
        model = _MODELS_BY_KIND[str(container[0])].get(str(container[2]))
        if len(container) == 4 and container[3] in ("ssl", "rate_limit"):
            model = TlsConfig if container[3] == "ssl" else RateLimit
        elif len(container) != 3:
            model = None
    return list(model.model_fields) if model else []


class _Locator:
    """Turns a location in the data into 'file, line N: sync 'x', field 'y': message'."""

    def __init__(self, path: Path, root: yaml.Node | None) -> None:
        self.path = path
        self.root = root

    def __call__(self, loc: Loc, data: dict[str, Any], message: str) -> str:
        loc = _without_kind_tag(loc)
        node = self.root
        for part in loc:  # the deepest node that exists: a missing key points at its parent
            node = _child(node, part) or node
        line = f", line {node.start_mark.line + 1}" if node is not None else ""
        return f"{self.path.name}{line}: {_describe(loc, data)}: {message}"

    def duplicate_keys(self) -> list[str]:
        problems: list[str] = []
        stack = [self.root] if self.root is not None else []
        while stack:
            node = stack.pop()
            if isinstance(node, yaml.MappingNode):
                seen: set[str] = set()
                for key, value in node.value:
                    if isinstance(key, yaml.ScalarNode) and key.value in seen:
                        problems.append(
                            f"{self.path.name}, line {key.start_mark.line + 1}: "
                            f"the key {key.value!r} appears twice in the same mapping"
                        )
                    seen.add(key.value)
                    stack.append(value)
            elif isinstance(node, yaml.SequenceNode):
                stack.extend(node.value)
        return problems


def _without_kind_tag(loc: Loc) -> Loc:
    """pydantic puts the `kind` of a database or destination into the location: drop it."""
    if len(loc) >= 3 and loc[0] in _MODELS_BY_KIND and loc[2] in _MODELS_BY_KIND[str(loc[0])]:
        return (*loc[:2], *loc[3:])
    return loc


def _child(node: yaml.Node | None, part: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == str(part):
                return value
    elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        return node.value[part]
    return None


def _describe(loc: Loc, data: dict[str, Any]) -> str:
    """`sync 'identify_users', field 'database'`, `destination 'cio', field 'kind'`, ..."""
    if not loc:
        return "top level"
    section = loc[0]
    if section == "syncs" and len(loc) >= 2 and isinstance(loc[1], int):
        entry = data.get("syncs", [])[loc[1]]
        name = entry.get("name") if isinstance(entry, dict) else None
        owner = f"sync {name!r}" if name else f"sync #{loc[1] + 1}"
        rest = loc[2:]
    elif section in ("databases", "destinations") and len(loc) >= 2:
        owner = f"{section[:-1]} {loc[1]!r}"
        rest = loc[2:]
    else:
        owner, rest = "top level", loc
    if not rest:
        return owner
    path = ".".join(str(part) for part in rest if isinstance(part, str))
    indexes = "".join(f"[{part}]" for part in rest if isinstance(part, int))
    return f"{owner}, field {path + indexes!r}"


def _yaml_error(path: Path, error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = " ".join(str(getattr(error, "problem", None) or error).split())
    return f"{path.name}{where}: not valid YAML: {problem}"
