"""Reporting datasets that also log to MLflow (optional ``mlflow`` extra).

Used by the ``mlflow`` configuration environment (``conf/mlflow/``, run with
``kedro run --env mlflow``): kedro-mlflow opens one MLflow run per Kedro run and
logs the node parameters; these datasets save exactly like the base ones
(``json.JSONDataset``, ``text.TextDataset``, ``matplotlib.MatplotlibDataset``,
versioned with the rest of the catalog) and then log the saved file to that run
as an artifact. :class:`MlflowComparisonDataset` also logs every method's
numeric results as metrics (``<method>.<metric>``, ``@`` written ``_at_``).
Without an active MLflow run they only save.

kedro-mlflow's own ``MlflowArtifactDataset`` is not used: it gives a wrapped
versioned dataset a save version of its own, which Kedro 1.7's catalog rejects
(``VersionAlreadyExistsError``: all datasets must share the run's save version).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kedro.io.core import get_filepath_str
from kedro_datasets.json import JSONDataset
from kedro_datasets.matplotlib import MatplotlibDataset
from kedro_datasets.text import TextDataset

from hgt_cluster_kedro.reporting.history import flat_metrics

logger = logging.getLogger(__name__)

# mlflow starts its telemetry client when first imported: keep it off (the
# Makefile exports the same; mlflow reads DO_NOT_TRACK only when it is "true")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


class _ArtifactLogging:
    """Log the file (or folder) a dataset has just saved to the active run."""

    _artifact_path: str | None

    def _active_run(self) -> Any:
        import mlflow

        run = mlflow.active_run()
        if run is None:
            logger.warning(
                "%s: no active MLflow run, saved without logging (install the "
                "`mlflow` extra and run with `--env mlflow`)",
                type(self).__name__,
            )
        return run

    def _log_saved(self) -> None:
        import mlflow

        if getattr(self, "_protocol", "file") != "file":
            logger.warning("%s: only local files are logged", type(self).__name__)
            return
        saved = (
            self._get_versioned_path(self.resolve_save_version())  # type: ignore[attr-defined]
            if self._version  # type: ignore[attr-defined]
            else self._filepath  # type: ignore[attr-defined]
        )
        path = Path(get_filepath_str(saved, "file"))
        if path.is_dir():  # e.g. a MatplotlibDataset saving several figures
            mlflow.log_artifacts(str(path), self._artifact_path)
        else:
            mlflow.log_artifact(str(path), self._artifact_path)


class MlflowComparisonDataset(_ArtifactLogging, JSONDataset):
    """``json.JSONDataset`` + metrics and the file in the active MLflow run.

    Args:
        metrics: the record fields to log (default: every numeric field).
        artifact_path: folder of the artifact in the run (default: its root).
        log_artifact: also log the saved JSON file.
        **kwargs: as ``json.JSONDataset`` (``filepath``, ``save_args``, ...).
    """

    def __init__(
        self,
        *,
        metrics: Sequence[str] | None = None,
        artifact_path: str | None = None,
        log_artifact: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._metrics = list(metrics) if metrics is not None else None
        self._artifact_path = artifact_path
        self._log_artifact = log_artifact

    def _describe(self) -> dict[str, Any]:
        return {**super()._describe(), "metrics": self._metrics}

    def save(self, data: Any) -> None:
        # Kedro wraps this method (versioning, errors): call the base class's
        # own write, not its wrapper, so the save version is resolved once
        JSONDataset.save.__wrapped__(self, data)  # type: ignore[attr-defined]
        run = self._active_run()
        if run is None:
            return
        import mlflow

        values = flat_metrics(data, self._metrics)
        mlflow.log_metrics(values)
        if self._log_artifact:
            self._log_saved()
        logger.info("Logged %d metrics to MLflow run %s", len(values), run.info.run_id)


class MlflowTextDataset(_ArtifactLogging, TextDataset):
    """``text.TextDataset`` + the file in the active MLflow run."""

    def __init__(self, *, artifact_path: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._artifact_path = artifact_path

    def save(self, data: str) -> None:
        TextDataset.save.__wrapped__(self, data)  # type: ignore[attr-defined]
        if self._active_run() is not None:
            self._log_saved()


class MlflowMatplotlibDataset(_ArtifactLogging, MatplotlibDataset):
    """``matplotlib.MatplotlibDataset`` + the image(s) in the active MLflow run."""

    def __init__(self, *, artifact_path: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._artifact_path = artifact_path

    def save(self, data: Any) -> None:
        MatplotlibDataset.save.__wrapped__(self, data)  # type: ignore[attr-defined]
        if self._active_run() is not None:
            self._log_saved()
