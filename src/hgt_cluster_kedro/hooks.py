"""Project hooks: the run environment, a pre-flight check of output paths, the
dask client, and node timings."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

from kedro.framework.hooks import hook_impl

logger = logging.getLogger(__name__)


def _local_path(dataset: Any) -> Path | None:
    path = getattr(dataset, "_filepath", None)
    if path is None:
        return None
    protocol = getattr(dataset, "_protocol", "file")
    if protocol not in ("file", "local", None):
        return None
    return Path(str(path))


def unwritable_reason(path: Path) -> str | None:
    """Why ``path`` cannot be created or written, or ``None`` if it can."""
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            return f"no existing parent directory of {path}"
        probe = probe.parent
    if probe != path and not probe.is_dir():
        return f"{probe} is a file, so {path} cannot be created below it"
    target = probe if probe.is_dir() else probe.parent
    if not os.access(target, os.W_OK | os.X_OK):
        return f"{target} is not writable"
    return None


RUN_DIR_PARAMS: tuple[tuple[str, ...], ...] = (
    ("twhin", "checkpoint_dir"),
    ("hgt", "run_dir"),
    ("hgt", "train", "checkpoint_dir"),
    ("hgt_som_joint", "train", "checkpoint_dir"),
)
"""Parameters naming directories that trainers write (``section``, keys...)."""


def _uses_section(pipeline: Any, section: str) -> bool:
    return any(
        name in ("parameters", f"params:{section}")
        or name.startswith(f"params:{section}.")
        for name in pipeline.inputs()
    )


def run_dirs(params: dict[str, Any], pipeline: Any) -> dict[str, Path]:
    """``parameter -> directory`` of :data:`RUN_DIR_PARAMS` set for the
    pipelines of this run."""
    found = {}
    for section, *keys in RUN_DIR_PARAMS:
        if not _uses_section(pipeline, section):
            continue
        value: Any = params.get(section)
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, str) and value and not value.startswith("<"):
            found[".".join((section, *keys))] = Path(value)
    return found


def run_dir_problems(params: dict[str, Any], pipeline: Any) -> list[str]:
    """Why the run's checkpoint / run directories cannot be written."""
    problems = []
    for name, path in run_dirs(params, pipeline).items():
        reason = unwritable_reason(path)
        if reason:
            problems.append(f"parameter '{name}' ({path}): {reason}")
    return problems


class RunEnvHook:
    """Tell the pipeline registry which Kedro environment runs.

    ``register_pipelines()`` receives no environment and ``kedro run --env X``
    does not set ``KEDRO_ENV``. ``after_context_created`` fires in
    ``KedroSession.run`` before the pipelines are first read, so recording
    ``context.env`` and the environment's ``run`` / ``ingestion`` parameters
    here lets ``register_pipelines`` build the environment's default run
    (``ingestion`` first for ``--env dblp``); see
    :mod:`hgt_cluster_kedro.pipeline_registry`. ``tryfirst``: before other
    hooks that read ``context.params`` (which loads the pipelines to validate
    parameters).
    """

    @hook_impl(tryfirst=True)
    def after_context_created(self, context: Any) -> None:
        from hgt_cluster_kedro.pipeline_registry import use_env

        # raw parameters: context.params would validate the pipelines, which
        # are not registered yet (the default run depends on `run`)
        use_env(context.env, context.config_loader["parameters"])


class OutputPathCheckHook:
    """Fail before the first node runs if any output of the run cannot be written.

    A bad output path (a file where a directory must be, a read-only directory)
    would otherwise surface only after hours of work, with earlier outputs
    already written. The checkpoint and run directories named by parameters
    (:data:`RUN_DIR_PARAMS`) are checked too, for the pipelines that read them.
    """

    def __init__(self) -> None:
        self._params: dict[str, Any] = {}

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        self._params = context.params

    @hook_impl
    def before_pipeline_run(
        self, run_params: dict, pipeline: Any, catalog: Any
    ) -> None:
        problems = run_dir_problems(self._params, pipeline)
        for name in sorted(pipeline.all_outputs()):
            if name not in catalog:
                continue
            path = _local_path(catalog.get(name))
            if path is None:
                continue
            reason = unwritable_reason(path)
            if reason:
                problems.append(f"dataset '{name}' (filepath {path}): {reason}")
        if problems:
            raise PermissionError(
                "Output paths cannot be written; nothing was run:\n  "
                + "\n  ".join(problems)
            )


class DaskClientHook:
    """Start a dask client for runs of ``data_generation`` in ``dask`` mode.

    The client lives for the whole pipeline run, so the lazy tables the node
    returns are computed while the catalog saves them (streaming, block by
    block), then the client and any LocalCluster it started are closed.
    """

    def __init__(self) -> None:
        self._params: dict[str, Any] = {}
        self._client: Any = None

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        self._params = context.params

    @hook_impl
    def before_pipeline_run(
        self, run_params: dict, pipeline: Any, catalog: Any
    ) -> None:
        if "params:data_generation" not in pipeline.inputs():
            return
        from hgt_cluster_kedro.generation import GeneratorConfig, start_client

        gen = self._params.get("data_generation")
        if isinstance(gen, dict):  # not yet validated by Kedro
            gen = GeneratorConfig.model_validate(gen)
        if gen is None or gen.mode != "dask":
            return
        self._client = start_client(gen.dask)

    def _close(self) -> None:
        if self._client is not None:
            from hgt_cluster_kedro.generation import stop_client

            stop_client(self._client)
            self._client = None

    @hook_impl
    def after_pipeline_run(self, *args: Any, **kwargs: Any) -> None:
        self._close()

    @hook_impl
    def on_pipeline_error(self, *args: Any, **kwargs: Any) -> None:
        self._close()


def _raw_source(pipeline: Any) -> str | None:
    """The pipeline (``data_generation`` / ``ingestion``) whose node writes the
    raw graph tables in this run, from the node's parameter inputs."""
    for node in pipeline.nodes:
        if "raw_nodes" in node.outputs:
            for source in ("data_generation", "ingestion"):
                if f"params:{source}" in node.inputs:
                    return source
            return node.name
    return None


def _resolve(model: Any, path: list[str]) -> Any:
    """``params:<section>.a.b`` from the validated section (YAML names)."""
    value = model
    for key in path:
        if isinstance(value, dict):
            value = value[key]
            continue
        fields = getattr(type(value), "model_fields", {})
        name = next((n for n, f in fields.items() if key in (n, f.alias)), key)
        value = getattr(value, name)
    return value


def _stored_table_names(catalog: Any, name: str) -> tuple[list[str], str] | None:
    """Table names of the latest version of a table-set dataset (no data read)."""
    if name not in catalog:
        return None
    dataset = catalog.get(name)
    table_dirs = getattr(dataset, "_table_dirs", None)
    if table_dirs is None or not dataset.exists():
        return None
    return sorted(table_dirs()), str(dataset._get_load_path())


def _check_stored_tables(validated: dict, pipeline: Any, catalog: Any) -> None:
    """A run that loads stored raw tables into ``graph`` checks their table
    names against the schema first, naming the pipeline that wrote them."""
    from hgt_cluster_kedro.config import SOURCES, ParameterError
    from hgt_cluster_kedro.config.registry import stored_tables_problems
    from hgt_cluster_kedro.pipeline_registry import current_default

    if not {"raw_nodes", "raw_edges"} <= set(pipeline.inputs()):
        return
    nodes = _stored_table_names(catalog, "raw_nodes")
    edges = _stored_table_names(catalog, "raw_edges")
    if nodes is None or edges is None:
        return
    default = current_default()
    source = default[0] if default and default[0] in SOURCES else "none"
    where = str(Path(nodes[1]).parent.parent)
    problems = stored_tables_problems(
        validated["graph"], nodes[0], edges[0], where, source
    )
    if problems:
        raise ParameterError(problems, "Stored tables do not match the schema")


class ParameterCheckHook:
    """Check every parameter section the run reads, and the rules across
    sections, before the first node runs; hand the nodes the validated models.

    Kedro validates a ``params:`` input typed with a pydantic model when it
    builds the catalog; this hook adds what Kedro cannot see: sections a node
    reads untyped or by a nested key, typos in top-level section names, missing
    sections (filled with their model's defaults), and the cross-section rules of
    :func:`hgt_cluster_kedro.config.check_parameters` (user counts against
    ``clustering.k`` and the SOMs, ``num_parts`` against the nodes, the schema
    against the source pipeline's tables, the joint HGT + SOM settings). Every
    ``params:<section>[.key]`` input of the run is then replaced in the catalog
    by the validated value, so nodes receive models, never raw dicts.
    ``tryfirst``: before the output-path check and the dask client.
    """

    @hook_impl(tryfirst=True)
    def before_pipeline_run(
        self, run_params: dict, pipeline: Any, catalog: Any
    ) -> None:
        from hgt_cluster_kedro.config import check_parameters

        names = sorted(n for n in pipeline.inputs() if n.startswith("params:"))
        sections = {n.split(":", 1)[1].split(".")[0] for n in names}
        params = catalog.load("parameters") if "parameters" in catalog else {}
        source = _raw_source(pipeline)
        validated = check_parameters(params, sections, source=source)
        if source is None and "graph" in validated:
            _check_stored_tables(validated, pipeline, catalog)
        for name in names:
            section, *path = name.split(":", 1)[1].split(".")
            if section not in validated:
                continue
            value = _resolve(validated[section], path)
            if name not in catalog or catalog.load(name) is not value:
                catalog[name] = value


class RunConsistencyHook:
    """Whole versions: a node's versioned outputs are complete together or not
    at all, and stale temporaries are removed.

    Before the run: stale temporaries of atomic writes are removed under every
    output's path and the checkpoint / run directories
    (:func:`~hgt_cluster_kedro.datasets._versions.clean_stale_temporaries`).
    At a node's first save (a node that fails before saving writes nothing):
    each of its versioned local outputs gets a *pending* marker in its version
    directory; once the node's last output is saved the markers become
    *complete* (listing every output and its version). The
    project's datasets load the newest version that is not pending
    (:class:`~hgt_cluster_kedro.datasets._versions.CompleteVersionsMixin`), so
    a crash between two saves of a node never pairs one run's model with
    another run's embeddings. (Generator nodes, which save chunk by chunk, are
    marked complete at their first chunk of every output; the project has none.)
    """

    def __init__(self) -> None:
        self._params: dict[str, Any] = {}
        self._lock = threading.Lock()
        # node name -> {output name: (version directory, version)} still unsaved
        self._pending: dict[str, dict[str, tuple[Path, str]]] = {}
        self._saved: dict[str, dict[str, tuple[Path, str]]] = {}
        self._marked: set[str] = set()

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        self._params = context.params

    @hook_impl
    def before_pipeline_run(
        self, run_params: dict, pipeline: Any, catalog: Any
    ) -> None:
        from hgt_cluster_kedro.datasets._versions import clean_stale_temporaries

        roots = set(run_dirs(self._params, pipeline).values())
        for name in pipeline.all_outputs():
            if name in catalog:
                path = _local_path(catalog.get(name))
                if path is not None:
                    roots.add(path if path.is_dir() else path.parent)
        for root in sorted(roots):
            clean_stale_temporaries(root)

    @hook_impl
    def before_node_run(self, node: Any, catalog: Any, **kwargs: Any) -> None:
        outputs = {}
        for name in node.outputs:
            where = _version_dir(catalog, name)
            if where is not None:
                outputs[name] = where
        with self._lock:
            self._marked.discard(node.name)
            if outputs:
                self._pending[node.name] = outputs
                self._saved[node.name] = {}
            else:
                self._pending.pop(node.name, None)

    @hook_impl
    def before_dataset_saved(self, dataset_name: str, data: Any, node: Any) -> None:
        from hgt_cluster_kedro.datasets._versions import mark_pending

        # at the node's first save (not before it runs: a node that fails
        # writes nothing), every versioned output becomes pending
        with self._lock:
            pending = self._pending.get(node.name)
            if pending is None or node.name in self._marked:
                return
            self._marked.add(node.name)
            targets = dict(pending)
        for version_dir, _ in targets.values():
            mark_pending(version_dir, node.name, targets)

    @hook_impl
    def after_dataset_saved(self, dataset_name: str, data: Any, node: Any) -> None:
        from hgt_cluster_kedro.datasets._versions import mark_complete

        with self._lock:
            pending = self._pending.get(node.name)
            if pending is None or dataset_name not in pending:
                return
            self._saved[node.name][dataset_name] = pending.pop(dataset_name)
            if pending:
                return
            saved = self._saved.pop(node.name)
            del self._pending[node.name]
        versions = {name: version for name, (_, version) in saved.items()}
        for version_dir, _ in saved.values():
            mark_complete(version_dir, node.name, versions)


def _version_dir(catalog: Any, name: str) -> tuple[Path, str] | None:
    """``(version directory, save version)`` of a versioned local dataset."""
    if name not in catalog:
        return None
    dataset = catalog.get(name)
    if getattr(dataset, "_version", None) is None or _local_path(dataset) is None:
        return None
    try:
        version = dataset.resolve_save_version()
        path = Path(str(dataset._get_versioned_path(version)))
    except Exception:  # noqa: BLE001 - not a standard versioned dataset
        return None
    return path.parent, str(version)


class NodeTimerHook:
    """Logs how long every node ran and, at the end of a run, the nodes by
    time (wall seconds, slowest first) — where a run's minutes go."""

    def __init__(self) -> None:
        self._start: dict[str, float] = {}
        self.seconds: dict[str, float] = {}

    @hook_impl
    def before_pipeline_run(self, *args: Any, **kwargs: Any) -> None:
        self._start.clear()
        self.seconds.clear()
        self._run_start = time.perf_counter()

    @hook_impl
    def before_node_run(self, node: Any, **kwargs: Any) -> None:
        self._start[node.name] = time.perf_counter()

    @hook_impl
    def after_node_run(self, node: Any, **kwargs: Any) -> None:
        start = self._start.pop(node.name, None)
        if start is not None:
            self.seconds[node.name] = time.perf_counter() - start
            logger.info("Node %s ran %.1f s", node.name, self.seconds[node.name])

    @hook_impl
    def after_pipeline_run(self, *args: Any, **kwargs: Any) -> None:
        if not self.seconds:
            return
        total = time.perf_counter() - getattr(self, "_run_start", time.perf_counter())
        rows = sorted(self.seconds.items(), key=lambda kv: -kv[1])
        logger.info(
            "Node times (s), run %.1f s: %s",
            total,
            ", ".join(f"{name} {sec:.1f}" for name, sec in rows),
        )
