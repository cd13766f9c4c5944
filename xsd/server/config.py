"""The configuration file: a TOML file whose keys are the daemon's long options.

``rundir = "/run/xenstored"`` sets what ``--rundir`` sets; a table ``[quota]`` sets
hard quotas (``nodes = 2000``), ``[quota-soft]`` soft ones. Options given on the command
line override the file. An unknown key is an error that names it, never ignored.
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path
from typing import Any

from xsd.server.liveupdate import STATE_OPTIONS, option_key


class ConfigError(Exception):
    """The configuration file cannot be used; the message names the key."""


_TABLES = {"quota": "quota", "quota-soft": "quota_soft"}
_NOT_KEYS = {"config", "version", *map(option_key, STATE_OPTIONS)}
"""Options that are no keys of a configuration file."""


def apply_file(parser: argparse.ArgumentParser, path: Path) -> None:
    """Make the values in ``path`` the parser's defaults.

    Raises:
        ConfigError: unreadable file, bad TOML, unknown key, or a value of the wrong kind.
    """
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    actions = {a.dest: a for a in parser._actions if a.dest != "help"}
    defaults: dict[str, Any] = {}
    for key, value in data.items():
        if key in _TABLES:
            if not isinstance(value, dict):
                raise ConfigError(f"{path}: [{key}] must be a table of name = number")
            pairs = []
            for name, number in value.items():
                if not isinstance(number, int) or isinstance(number, bool) or number < 0:
                    raise ConfigError(f"{path}: {key}.{name} must be a number >= 0")
                pairs.append(f"{name}={number}")
            defaults[_TABLES[key]] = pairs
            continue
        dest = key.replace("-", "_")
        action = actions.get(dest)
        if action is None or dest in _NOT_KEYS:
            raise ConfigError(f"{path}: unknown key {key!r}")
        defaults[dest] = _convert(path, key, action, value)
    parser.set_defaults(**defaults)


def _convert(path: Path, key: str, action: argparse.Action, value: Any) -> Any:
    if isinstance(action, argparse._StoreTrueAction | argparse._StoreFalseAction):
        if not isinstance(value, bool):
            raise ConfigError(f"{path}: {key} must be true or false")
        return value
    if isinstance(action, argparse._CountAction):
        if not isinstance(value, int):
            raise ConfigError(f"{path}: {key} must be a number")
        return value
    if isinstance(action, argparse._AppendAction):
        items = value if isinstance(value, list) else [value]
        return [_one(path, key, action, item) for item in items]
    return _one(path, key, action, value)


def _one(path: Path, key: str, action: argparse.Action, value: Any) -> Any:
    if isinstance(value, dict | list):
        raise ConfigError(f"{path}: {key} must be a single value")
    convert = action.type if callable(action.type) else None
    try:
        return convert(str(value)) if convert is not None else value
    except (ValueError, TypeError, argparse.ArgumentTypeError) as exc:
        raise ConfigError(f"{path}: {key} = {value!r}: {exc}") from exc
