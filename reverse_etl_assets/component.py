"""A Dagster Component: the syncs of a `defs.yaml` in any `dg` project, from a reverse_etl.yaml file or
written inline under `attributes`.

It is also the project's registry module (entry point `dagster_dg_cli.registry_modules` in setup.py),
so `dg list components` shows it and a defs.yaml names it `reverse_etl_assets.component.ReverseEtlComponent`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import dagster as dg
import yaml
from pydantic import PrivateAttr

from reverse_etl_assets.config.loading import (
    ConfigError,
    LoadedConfig,
    config_path,
    load_config,
    load_config_data,
)
from reverse_etl_assets.config.models import ProjectConfig
from reverse_etl_assets.defs.build import build_definitions

__all__ = ["ReverseEtlComponent"]

_INLINE_KEYS = ProjectConfig.model_fields.keys()
# Settings of the whole configuration, not of one database, destination or sync.
_PROJECT_SETTINGS = ("schedule_timezone", "executor", "rejected_rows_retention_days")


def _inline(description: str) -> Any:
    """A reverse_etl.yaml key written inline, passed through as written: Dagster's `{{ }}` templates
    are not rendered in it, so a query's `{{last_sync_time}}` reaches the sync untouched."""
    return dg.Resolver.passthrough(description=description)


class ReverseEtlComponent(dg.Component, dg.Model, dg.Resolvable):
    """Reverse ETL syncs (MySQL rows → Customer.io, Segment or compatible calls), one asset per sync.

    Either `config_file` (a reverse_etl.yaml, relative to this defs.yaml) or the file's keys inline
    (`databases`, `destinations`, `syncs`, ...), not both. With neither, the file that
    `reverse-etl` itself would use: `$REVERSE_ETL_CONFIG`, else ./reverse_etl.yaml, else the demo.
    Several of them in one project make one configuration: a name means one database, destination
    or sync in all of them.
    """

    config_file: str | None = None
    databases: Annotated[dict[str, Any] | None, _inline("Named databases, as in reverse_etl.yaml.")] = None
    destinations: Annotated[dict[str, Any] | None, _inline("Named destinations, as in reverse_etl.yaml.")] = (
        None
    )
    syncs: Annotated[list[dict[str, Any]] | None, _inline("The syncs, as in reverse_etl.yaml.")] = None
    schedule_timezone: Annotated[str | None, _inline("The schedules' time zone (default UTC).")] = None
    executor: Annotated[dict[str, Any] | None, _inline("How sync runs execute, as in reverse_etl.yaml.")] = (
        None
    )
    rejected_rows_retention_days: Annotated[
        float | None, _inline("How long rejected rows are kept (default 30).")
    ] = None

    _loaded: LoadedConfig | None = PrivateAttr(default=None)

    @classmethod
    def load(cls, attributes: Any, context: dg.ComponentLoadContext) -> ReverseEtlComponent:
        """Reads the configuration while Dagster loads the component, so a broken one is reported
        as this component's load error, naming its defs.yaml (or reverse_etl.yaml) and line."""
        component = super().load(attributes, context)
        component._loaded = component.loaded_config(context)
        return component

    def loaded_config(self, context: dg.ComponentLoadContext) -> LoadedConfig:
        """The configuration this component declares, validated; ConfigError otherwise."""
        if self._loaded is not None:
            return self._loaded
        defs_yaml, attributes_line = _where(context)
        folder = defs_yaml.parent if defs_yaml is not None else context.path
        where = defs_yaml or folder / "defs.yaml"
        inline = {key: value for key in _INLINE_KEYS if (value := getattr(self, key)) is not None}
        if self.config_file is not None and inline:
            raise ConfigError(
                where,
                [
                    f"{where.name}{_line(attributes_line)}: attributes: set either config_file or the "
                    f"configuration inline ({', '.join(inline)}), not both"
                ],
            )
        if inline:
            node = _attributes_node(defs_yaml, attributes_line) if defs_yaml is not None else None
            config = load_config_data(where, inline, node, base=folder)
        elif self.config_file is not None:
            path = Path(self.config_file).expanduser()
            config = load_config(path if path.is_absolute() else (folder / path).resolve())
        else:
            config = load_config(config_path())
        for warning in config.warnings:
            logging.getLogger("reverse_etl").warning("%s", warning)
        return config

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        """The first ReverseEtlComponent of the project builds every one's syncs, as one
        configuration; the others build nothing. The sensors that watch every sync's runs (alerts,
        dead runs) and the start-now sensor exist once per code location, as Dagster requires."""
        peers = _peers(self, context)
        if peers[0] is not self:
            return dg.Definitions()
        return build_definitions(_merged([peer.loaded_config(context) for peer in peers]))


def _peers(component: ReverseEtlComponent, context: dg.ComponentLoadContext) -> list[ReverseEtlComponent]:
    """Every ReverseEtlComponent of the project, this one among them, in Dagster's order."""
    try:
        found = context.component_tree.get_all_components(of_type=ReverseEtlComponent)
    except Exception:  # built outside a project's defs folder (a test harness): alone
        return [component]
    return found if any(peer is component for peer in found) else [component, *found]


def _merged(configs: list[LoadedConfig]) -> LoadedConfig:
    """Several components' configurations as one; ConfigError where they disagree on a name."""
    if len(configs) == 1:
        return configs[0]
    first = configs[0]
    problems: list[str] = []
    databases: dict[str, Any] = {}
    destinations: dict[str, Any] = {}
    syncs: dict[str, Any] = {}
    owner: dict[tuple[str, str], Path] = {}
    for config in configs:
        project = config.project
        for section, merged, entries in (
            ("database", databases, project.databases),
            ("destination", destinations, project.destinations),
            ("sync", syncs, {sync.name: sync for sync in project.syncs}),
        ):
            for name, entry in entries.items():
                if name in merged and (section == "sync" or merged[name] != entry):
                    how = "also declares" if section == "sync" else "declares differently"
                    problems.append(
                        f"{config.path}: {section} {name!r}: {owner[section, name]} {how} it; the "
                        f"ReverseEtlComponents of a project share their names: rename one, or "
                        f"declare it the same in both"
                    )
                merged.setdefault(name, entry)
                owner.setdefault((section, name), config.path)
        for setting in _PROJECT_SETTINGS:
            if getattr(project, setting) != getattr(first.project, setting):
                problems.append(
                    f"{config.path}: {setting} differs from {first.path}'s: the syncs of a project share it"
                )
    if problems:
        raise ConfigError(configs[-1].path, problems)
    project = first.project.model_copy(
        update={"databases": databases, "destinations": destinations, "syncs": list(syncs.values())}
    )
    warnings = [warning for config in configs for warning in config.warnings]
    return LoadedConfig(path=first.path, project=project, warnings=warnings)


def _where(context: dg.ComponentLoadContext) -> tuple[Path | None, int | None]:
    """The defs.yaml this component was declared in, and the line of its `attributes`."""
    tree = context.resolution_context.source_position_tree
    if tree is None:
        return None, None
    attributes = tree.children.get("attributes")
    position = attributes.position if attributes is not None else tree.position
    path = Path(position.filename)
    if not path.is_file():  # a name relative to another working directory
        path = context.path / path.name if context.path.is_dir() else context.path
    return path, position.start.line


def _line(line: int | None) -> str:
    return f", line {line}" if line is not None else ""


def _attributes_node(defs_yaml: Path, line: int | None) -> yaml.Node | None:
    """The YAML node of `attributes` in defs.yaml (which may hold several documents, one component
    each: the one at `line`), for the lines of the problems found in it."""
    try:
        documents = list(yaml.compose_all(defs_yaml.read_text(encoding="utf-8"), Loader=yaml.SafeLoader))
    except (OSError, yaml.YAMLError):
        return None
    for document in documents:
        if not isinstance(document, yaml.MappingNode):
            continue
        for key, value in document.value:
            lines = {key.start_mark.line + 1, value.start_mark.line + 1}
            if key.value == "attributes" and (line is None or line in lines):
                return value
    return None
