"""The project's configuration loader: environments override, never copy.

:class:`ProjectConfigLoader` is Kedro's ``OmegaConfigLoader`` with two rules:

* **Parameters merge softly** (``merge_strategy: {parameters: soft}`` in
  ``settings.py``): an environment states only the keys it changes, at any depth
  (``hgt: {train: {epochs: 30}}`` keeps every other ``hgt`` key of base). Lists
  are replaced whole. A few keys describe one thing that must not be mixed with
  base: those in :data:`WHOLE_KEYS` (``graph.schema``) are replaced as a unit when
  an environment sets them, so a DBLP schema never inherits base's ``user`` /
  ``note`` types or relations.
* **One data root per environment**: the ``${globals:data_root}`` every catalog
  path and run directory starts with is ``data`` for the base environment
  (``base``, ``local``, none) and ``data/<env>`` for any other, so environments
  never load each other's versions. An environment may set ``data_root`` in its
  ``globals.yml`` (``conf/mlflow`` shares base's data that way).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from kedro.config import OmegaConfigLoader

#: dotted parameter keys an environment replaces as a whole, never merges
WHOLE_KEYS: tuple[str, ...] = ("graph.schema",)


def data_root(env: str | None, base_envs: tuple[str, ...] = ("base", "local")) -> str:
    """``data`` for the base environment, ``data/<env>`` for any other."""
    if not env or env in base_envs:
        return "data"
    if Path(env).name != env or env.startswith("."):
        raise ValueError(f"environment name {env!r} cannot name a data directory")
    return f"data/{env}"


def _has(config: Any, path: list[str]) -> bool:
    for key in path:
        if not isinstance(config, dict) or key not in config:
            return False
        config = config[key]
    return True


def _drop(config: dict[str, Any], path: list[str]) -> None:
    *parents, last = path
    for key in parents:
        config = config[key]
    del config[last]


class ProjectConfigLoader(OmegaConfigLoader):
    """``OmegaConfigLoader`` with whole-key replacement in soft merges and a
    per-environment ``data_root`` global (see the module docstring)."""

    def __init__(self, conf_source: str | Path, *args: Any, **kwargs: Any) -> None:
        super().__init__(conf_source, *args, **kwargs)
        if "data_root" not in (self._globals or {}):
            env = self.env or self.default_run_env
            bases = tuple(e for e in (self.base_env, self.default_run_env) if e)
            self._globals = {
                **(self._globals or {}),
                "data_root": data_root(env, bases),
            }
            self._globals_oc = None

    @staticmethod
    def _soft_merge(
        config: dict[str, Any], env_config: dict[str, Any], env_path: str | None = None
    ) -> Any:
        whole = [k.split(".") for k in WHOLE_KEYS if _has(env_config, k.split("."))]
        if whole:
            config = copy.deepcopy(config)
            for path in whole:
                if _has(config, path):
                    _drop(config, path)
        return OmegaConfigLoader._soft_merge(config, env_config, env_path)
