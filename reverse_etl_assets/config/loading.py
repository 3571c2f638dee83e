"""Find, parse and validate the YAML file; every problem names the file, line, sync and field."""

from __future__ import annotations

import codecs
import difflib
import ipaddress
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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
    shown,
)
from reverse_etl_assets.redaction import redact
from reverse_etl_assets.sql.placeholders import unknown_placeholders, uses_last_sync_time

CONFIG_ENV_VAR = "REVERSE_ETL_CONFIG"
DEFAULT_CONFIG_FILE = "reverse_etl.yaml"
DEMO_CONFIG = Path(__file__).resolve().parent.parent / "demo" / "reverse_etl.yaml"

Loc = tuple[str | int, ...]

# Bounds that keep a broken or hostile file from hanging or crashing the loader. PyYAML (in pure
# Python) reads about 0.7 MB and composes about 60,000 values a second, building nested values
# recursively; Python converts a number's digits in time that grows with their square.
MAX_FILE_BYTES = 1 << 20  # 1 MiB: a configuration of hundreds of syncs takes a fraction of it
MAX_NODES = 100_000  # keys and values: a sync takes about 30
MAX_DEPTH = 20  # a configuration nests 5 deep (syncs, a sync, column_types, a column, its type)
MAX_NUMBER_LENGTH = 100  # characters
MAX_PROBLEMS = 50  # listed; the rest are counted

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
    """The configuration in `path` (by default the one config_path() finds), or ConfigError listing
    its problems, each located. Any file, however broken, gives one or the other within seconds."""
    path = path or config_path()
    root, data = _parse(path, _read(path))
    if root is None or data is None:
        raise ConfigError(
            path,
            [
                f"{path.name}, line 1: the file holds no configuration (it is empty, or only comments): "
                "declare databases, destinations and syncs (see docs/configuration.md)"
            ],
        )
    return load_config_data(path, data, root)


def load_config_data(path: Path, data: Any, node: yaml.Node | None, base: Path | None = None) -> LoadedConfig:
    """A configuration already parsed, perhaps from inside another YAML file (a Dagster component's
    defs.yaml, under `attributes`): `node` is where `data` sits in `path`'s node tree, so problems
    name that file and its lines. Relative paths resolve against `base`, by default `path`'s folder."""
    base = base or path.parent
    if not isinstance(data, dict):
        found = "a list" if isinstance(data, list) else f"the single value {shown(str(data))}"
        line = f", line {node.start_mark.line + 1}" if node is not None else ""
        raise ConfigError(
            path,
            [
                f"{path.name}{line}: top level: expected a mapping with "
                f"databases, destinations and syncs, found {found}"
            ],
        )

    locate = _Locator(path, node)
    problems = locate.duplicate_keys()
    try:
        project = ProjectConfig.model_validate(data)
    except ValidationError as error:
        items = error.errors()
        problems += [_pydantic_problem(locate, data, item) for item in items[:MAX_PROBLEMS]]
        raise _listed(path, problems, unlisted=max(0, len(items) - MAX_PROBLEMS)) from None
    found = _reference_problems(project) + _path_problems(project, base)
    problems += [locate(loc, data, message) for loc, message in found[:MAX_PROBLEMS]]
    if problems:
        raise _listed(path, problems, unlisted=max(0, len(found) - MAX_PROBLEMS))
    warnings = [locate(loc, data, message) for loc, message in _warnings(project)]
    return LoadedConfig(path=path, project=_absolute_paths(project, base), warnings=warnings)


def _listed(path: Path, problems: list[str], unlisted: int = 0) -> ConfigError:
    """At most MAX_PROBLEMS problems, and how many more there are."""
    unlisted += max(0, len(problems) - MAX_PROBLEMS)
    more = [f"{path.name}: {unlisted} more problem(s) not listed; fix these first"] if unlisted else []
    return ConfigError(path, problems[:MAX_PROBLEMS] + more)


def _read(path: Path) -> str:
    """The file's text: UTF-8 (with or without a byte order mark), at most MAX_FILE_BYTES."""
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        hint = f" (set by ${CONFIG_ENV_VAR})" if os.environ.get(CONFIG_ENV_VAR) else ""
        raise ConfigError(path, [f"cannot read the file{hint}: {error.strerror or error}"]) from None
    if len(raw) > MAX_FILE_BYTES:
        raise ConfigError(
            path,
            [
                f"{path.name}: the file is larger than {MAX_FILE_BYTES // 1024} KiB; a configuration of "
                "hundreds of syncs takes a fraction of that"
            ],
        )
    for bom, encoding in (
        (codecs.BOM_UTF32_LE, "UTF-32"),
        (codecs.BOM_UTF32_BE, "UTF-32"),
        (codecs.BOM_UTF16_LE, "UTF-16"),
        (codecs.BOM_UTF16_BE, "UTF-16"),
    ):
        if raw.startswith(bom):
            raise ConfigError(path, [f"{path.name}, line 1: the file is {encoding} text; save it as UTF-8"])
    body = raw.removeprefix(codecs.BOM_UTF8)
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as error:
        line = body.count(b"\n", 0, error.start) + 1
        column = error.start - body.rfind(b"\n", 0, error.start)
        raise ConfigError(
            path,
            [
                f"{path.name}, line {line}, column {column}: the file is not UTF-8 text "
                f"(byte 0x{body[error.start]:02x}); save it as UTF-8"
            ],
        ) from None


class _Unsupported(yaml.MarkedYAMLError):
    """Valid YAML that the configuration does not accept."""

    def __init__(self, problem: str, mark: yaml.Mark) -> None:
        super().__init__(problem=problem, problem_mark=mark)


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing anchors and aliases (nine lines of them can stand for a billion
    values), bounding nesting, size and numbers, and reporting a value it cannot construct (a date
    such as 2024-13-01, `!!bool maybe`) as a YAML error at its line rather than a Python exception."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.depth = 0
        self.nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _Unsupported(
                "YAML anchors and aliases (&x, *x) are not supported: write the value out in full",
                event.start_mark,
            )
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _Unsupported(
                f"the file holds more than {MAX_NODES:,} keys and values; a configuration needs far fewer",
                event.start_mark,
            )
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _Unsupported(
                    f"values nested more than {MAX_DEPTH} deep; a configuration nests at most 5",
                    event.start_mark,
                )
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except Exception as error:  # ValueError, KeyError, AttributeError... from a malformed value
            value = shown(node.value) if isinstance(node.value, str) else "this value"
            detail = f" ({error})" if isinstance(error, ValueError) else ""  # e.g. month must be in 1..12
            problem = f"cannot read {value} as a {node.tag.rsplit(':', 1)[-1]}{detail}"
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from None

    def construct_number(self, node: yaml.ScalarNode) -> Any:
        if len(node.value) > MAX_NUMBER_LENGTH:
            raise _Unsupported(
                f"a number of {len(node.value):,} characters is not a setting (at most {MAX_NUMBER_LENGTH})",
                node.start_mark,
            )
        if node.tag.endswith(":int"):
            return self.construct_yaml_int(node)
        return self.construct_yaml_float(node)


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_number)
_Loader.add_constructor("tag:yaml.org,2002:float", _Loader.construct_number)


def _parse(path: Path, text: str) -> tuple[yaml.Node | None, Any]:
    """The file's YAML node tree (for line numbers) and its data; ConfigError if it is not YAML the
    configuration accepts."""
    loader: _Loader | None = None
    try:
        loader = _Loader(text)
        root = loader.get_single_node()
        return root, None if root is None else loader.construct_document(root)
    except yaml.YAMLError as error:
        raise ConfigError(path, [_yaml_error(path, text, error)]) from None
    except (RecursionError, MemoryError):  # the bounds above should make these impossible
        raise ConfigError(path, [f"{path.name}: the YAML is too large or too deeply nested"]) from None
    finally:
        if loader is not None:
            loader.dispose()


def _config_paths(project: ProjectConfig) -> list[tuple[Loc, Path]]:
    """Every path the file sets, where it sets it."""
    found: list[tuple[Loc, Path | None]] = []
    for name, database in project.databases.items():
        if isinstance(database, SQLiteDatabase):
            found.append((("databases", name, "path"), database.path))
        else:
            found += [
                (("databases", name, "ssl", key), getattr(database.ssl, key)) for key in ("ca", "cert", "key")
            ]
    for name, destination in project.destinations.items():
        if isinstance(destination, OutboxDestination):
            found.append((("destinations", name, "path"), destination.path))
    return [(loc, path) for loc, path in found if path is not None]


def _path_problems(project: ProjectConfig, base: Path) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    for loc, path in _config_paths(project):
        try:
            (base / path).resolve()
        except (ValueError, OSError, RuntimeError) as error:  # a NUL character, a symbolic link loop
            problems.append((loc, f"not a usable path: {error}"))
    return problems


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


# Names of Dagster's own definitions, in the namespaces of definition_names().
_DAGSTER_OWN_NAMES = {
    ("op", "__ASSET_JOB"): "Dagster's job of every asset",
    ("instigator", "reverse_etl_failure_alerts"): "the failure alerts sensor",
    ("instigator", "reverse_etl_rejected_rows_alerts"): "the rejected rows alerts sensor",
    ("instigator", "reverse_etl_dead_runs"): "the dead runs sensor",
    ("instigator", "reverse_etl_start_now"): "the start-now sensor",
    ("instigator", "reverse_etl_after_upstream"): "the after-upstream automation sensor",
}


def definition_names(sync: SyncConfig) -> list[tuple[str, str, str]]:
    """(namespace, name, what it is) of each Dagster definition a sync becomes (defs/build.py and
    what it calls; a test builds them and compares). Ops and graphs (jobs) share one namespace,
    schedules and sensors another; Dagster refuses two definitions with one name in either."""
    names = [
        ("op", sync.name, "asset"),
        ("op", f"{sync.name}_job", "job"),
        ("op", f"preview_{sync.name}", "preview job"),
        ("op", f"preview_{sync.name}_op", "preview op"),
    ]
    if sync.frequency is not None:
        names += [("instigator", f"{sync.name}__{d}_schedule", f"schedule to {d}") for d in sync.destinations]
    return names


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
    return problems + _name_clashes(project) + _dependency_loops(project)


def _name_clashes(project: ProjectConfig) -> list[tuple[Loc, str]]:
    """Two syncs whose Dagster definitions would share a name (`preview_x` and the preview job of
    `x`; `a__b` to `c` and `a` to `b__c`, whose schedules are both `a__b__c_schedule`)."""
    problems: list[tuple[Loc, str]] = []
    taken: dict[tuple[str, str], str] = dict(_DAGSTER_OWN_NAMES)
    counts = Counter(sync.name for sync in project.syncs)
    for index, sync in enumerate(project.syncs):
        if counts[sync.name] > 1:
            continue  # reported as a duplicate name
        for namespace, name, what in definition_names(sync):
            other = taken.setdefault((namespace, name), f"the {what} of sync {sync.name!r}")
            if other != f"the {what} of sync {sync.name!r}":
                problems.append(
                    (
                        ("syncs", index, "name"),
                        f"its {what} would be named {name!r}, as is {other}: Dagster needs different "
                        "names; rename the sync",
                    )
                )
    return problems


def _dependency_loops(project: ProjectConfig) -> list[tuple[Loc, str]]:
    """after_assets that name syncs, in a loop (a sync after itself, or a after b after a): Dagster
    refuses a cycle of dependencies."""
    index_of = {sync.name: index for index, sync in enumerate(project.syncs)}
    after = [
        [(position, index_of[key]) for position, key in enumerate(sync.after_assets) if key in index_of]
        for sync in project.syncs
    ]
    problems: list[tuple[Loc, str]] = []
    state: dict[int, str] = {}  # "open" while on the current path, then "done"
    for start in range(len(after)):
        if start in state:
            continue
        path, steps = [start], [iter(after[start])]
        state[start] = "open"
        while steps:  # depth first, without recursion
            step = next(steps[-1], None)
            if step is None:
                state[path.pop()] = "done"
                steps.pop()
                continue
            position, target = step
            if state.get(target) == "open":
                loop = " → ".join(project.syncs[i].name for i in [*path[path.index(target) :], target])
                problems.append(
                    (
                        ("syncs", path[-1], "after_assets", position),
                        f"the syncs run after each other in a loop ({loop}); Dagster refuses a cycle of "
                        "dependencies",
                    )
                )
            elif target not in state:
                state[target] = "open"
                path.append(target)
                steps.append(iter(after[target]))
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
    for name, destination in project.destinations.items():
        url = getattr(destination, "base_url", None)
        if url and _sends_a_key(destination) and _plain_http_elsewhere(url):
            warnings.append(
                (
                    ("destinations", name, "base_url"),
                    f"the API key would travel unencrypted to {urlsplit(url).hostname} over plain http://: "
                    "use https:// (plain http is fine only on this machine)",
                )
            )
    return warnings


def _sends_a_key(destination: Any) -> bool:
    return any(
        getattr(destination, field, None)
        for field in ("api_key_env", "write_key_env", "basic_key_env", "header_value_env")
    )


def _plain_http_elsewhere(url: str) -> bool:
    """http:// to a host other than this machine's loopback."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        return False
    host = parts.hostname or ""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def _pydantic_problem(locate: _Locator, data: dict[str, Any], item: Any) -> str:
    loc: Loc = tuple(item["loc"])
    kind = item["type"]
    if kind == "extra_forbidden":
        key = str(loc[-1])
        allowed = _allowed_keys(loc[:-1])
        close = difflib.get_close_matches(key, allowed, n=1) if len(key) <= 100 else []
        message = f"unknown key {shown(key)}" + (f"; did you mean {close[0]!r}?" if close else "")
        if allowed:
            message += f" (allowed: {', '.join(allowed)})"
    elif kind == "missing":
        message = "this field is required"
    elif kind == "union_tag_invalid":
        given = item["input"].get("kind") if isinstance(item["input"], dict) else None
        message = f"unknown kind {shown(str(given))}; expected {item['ctx']['expected_tags']}"
    elif kind == "union_tag_not_found":
        message = f"'kind' is required; one of {', '.join(_MODELS_BY_KIND.get(str(loc[0]), {}))}"
    else:
        text = item["msg"].removeprefix("Value error, ")
        given = item.get("input")
        message = text
        if isinstance(given, (str, int, float, bool)):  # not a list or mapping, which may be large
            # A URL's user:password@ is never echoed.
            value = redact(shown(given)) if isinstance(given, str) else repr(given)
            message += f" (got {value})" if value not in text else ""
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
        node = parent = self.root
        for index, part in enumerate(loc):  # the deepest node that exists: a missing key points at its parent
            if part == "[key]" and index > 0:  # pydantic's location of a mapping's key: point at the key
                node = _key(parent, loc[index - 1]) or node
                break
            parent, node = node, _child(node, part) or node
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
                    if isinstance(key, yaml.ScalarNode):
                        if key.value in seen:
                            problems.append(
                                f"{self.path.name}, line {key.start_mark.line + 1}: "
                                f"the key {shown(key.value)} appears twice in the same mapping"
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


def _key(node: yaml.Node | None, part: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, _ in node.value:
            if key.value == str(part):
                return key
    return None


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
    if loc and loc[-1] == "[key]":  # a mapping's key: the message is about the name itself
        loc = loc[:-1]
    if not loc:
        return "top level"
    section = loc[0]
    if section == "syncs" and len(loc) >= 2 and isinstance(loc[1], int):
        entries = data.get("syncs")
        entry = entries[loc[1]] if isinstance(entries, list) and 0 <= loc[1] < len(entries) else None
        name = entry.get("name") if isinstance(entry, dict) else None
        owner = f"sync {shown(name)}" if isinstance(name, str) and name else f"sync #{loc[1] + 1}"
        rest = loc[2:]
    elif section in ("databases", "destinations") and len(loc) >= 2:
        name = shown(loc[1]) if isinstance(loc[1], str) else repr(loc[1])
        owner = f"{section[:-1]} {name}"
        rest = loc[2:]
    else:
        owner, rest = "top level", loc
    if not rest:
        return owner
    path = ".".join(str(part) for part in rest if isinstance(part, str))
    indexes = "".join(f"[{part}]" for part in rest if isinstance(part, int))
    return f"{owner}, field {path + indexes!r}"


def _yaml_error(path: Path, text: str, error: yaml.YAMLError) -> str:
    if isinstance(error, yaml.reader.ReaderError):  # a character YAML does not allow, even quoted
        line = text.count("\n", 0, error.position) + 1
        column = error.position - text.rfind("\n", 0, error.position)
        escape = f"\\x{error.character:02X}" if error.character < 256 else f"\\u{error.character:04X}"
        return (
            f"{path.name}, line {line}, column {column}: not valid YAML: the character "
            f"U+{error.character:04X} is not allowed (in a double-quoted string, write {escape})"
        )
    mark = getattr(error, "problem_mark", None)
    where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = " ".join(str(getattr(error, "problem", None) or error).split())
    if isinstance(error, yaml.composer.ComposerError) and error.context:  # "expected a single document"
        problem = f"{error.context}, {problem}"
    if isinstance(error, _Unsupported):
        return f"{path.name}{where}: {problem}"
    if "'\\t'" in problem:
        problem += " (indent with spaces: YAML does not allow tabs there)"
    return f"{path.name}{where}: not valid YAML: {problem}"
