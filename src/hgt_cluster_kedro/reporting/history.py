"""Past runs side by side: every saved version of ``comparison`` in one table.

``comparison`` is a versioned JSON dataset: each run writes
``<path>/<version>/<name>`` (``<version>`` is Kedro's save timestamp, e.g.
``2026-11-23T17.05.45.194Z``) holding one record per method, either a list of
``{"method": ..., metric: value, ...}`` or a mapping ``{method: {metric: value}}``.
:func:`load_history` reads them all into a tidy frame, one row per (version,
method); :func:`to_markdown` prints it. No Kedro import: usable from notebooks,
scripts and the command line::

    python -m hgt_cluster_kedro.reporting.history --metrics nmi recall@50 --last 5
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

logger = logging.getLogger(__name__)

#: where the catalog saves ``comparison`` (relative to the project root)
DEFAULT_PATH = "data/08_reporting/comparison.json"
#: metrics shown when none are asked for (those present in the records)
DEFAULT_METRICS = ("nmi", "ari", "recall@50", "ndcg@50", "hitrate@50", "train_seconds")
#: Kedro's version folder name (``kedro.io.core.VERSION_FORMAT``)
VERSION_FORMAT = "%Y-%m-%dT%H.%M.%S.%fZ"
#: the leading columns of :func:`load_history`
KEY_COLUMNS = ("version", "timestamp", "method")
UNVERSIONED = "unversioned"


def parse_version(name: str) -> pd.Timestamp | None:
    """The UTC time of a Kedro version folder name, ``None`` if it is not one."""
    try:
        return pd.Timestamp(datetime.strptime(name, VERSION_FORMAT).replace(tzinfo=UTC))
    except ValueError:
        return None


def records_of(payload: Any, source: str = "comparison") -> list[dict[str, Any]]:
    """Per-method records of one saved comparison (a list of records with a
    ``method`` key, or a mapping ``{method: metrics}``)."""
    if isinstance(payload, dict):
        if not all(isinstance(v, dict) for v in payload.values()):
            raise ValueError(
                f"{source}: expected a mapping method -> metrics or a list of records"
            )
        return [{"method": str(name), **metrics} for name, metrics in payload.items()]
    if isinstance(payload, list):
        bad = [i for i, r in enumerate(payload) if not isinstance(r, dict)]
        missing = [
            i
            for i, r in enumerate(payload)
            if isinstance(r, dict) and "method" not in r
        ]
        if bad or missing:
            raise ValueError(
                f"{source}: records {bad or missing} are not objects with a 'method' key"
            )
        return [dict(r) for r in payload]
    raise ValueError(
        f"{source}: expected a list or a mapping, got {type(payload).__name__}"
    )


def flat_metrics(
    records: Any, metrics: Iterable[str] | None = None
) -> dict[str, float]:
    """The numeric fields of a saved comparison as ``{"<method>.<metric>": value}``
    (MLflow metric names: ``@`` becomes ``_at_``, e.g.
    ``twhin_kmeans.recall_at_50``); ``metrics`` limits the fields, booleans,
    strings, missing and non-finite values are left out."""
    wanted = None if metrics is None else set(metrics)
    out: dict[str, float] = {}
    for record in records_of(records):
        for key, value in record.items():
            if key == "method" or (wanted is not None and key not in wanted):
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                continue
            if not math.isfinite(value):
                continue
            out[f"{record['method']}.{key}".replace("@", "_at_")] = float(value)
    return out


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, bool | int | float | str)


def _version_files(path: Path) -> list[tuple[str, pd.Timestamp | None, Path]]:
    if path.is_file():  # an unversioned dataset: one "version"
        mtime = datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
        return [(UNVERSIONED, pd.Timestamp(mtime), path)]
    out = []
    for child in path.iterdir():
        if not child.is_dir():
            continue
        file = child / path.name
        if not file.is_file():
            logger.warning("Skipping version %s: no %s inside", child.name, path.name)
            continue
        out.append((child.name, parse_version(child.name), file))
    return out


def load_history(
    path: str | Path = DEFAULT_PATH,
    *,
    last: int | None = None,
    methods: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Every saved version of a comparison as one tidy frame.

    Args:
        path: the dataset's ``filepath`` (the folder holding the versions), or a
            single JSON file.
        last: keep only the ``last`` most recent versions.
        methods: keep only these methods.

    Returns:
        One row per (version, method), oldest version first and methods in their
        saved order: ``version`` (folder name), ``timestamp`` (UTC, ``NaT`` for a
        folder name that is not a Kedro timestamp), ``method``, then one column
        per scalar metric (a metric missing from a record is ``NaN``; nested
        values such as lists are left out).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``last`` is smaller than 1.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist: no comparison has been saved there yet "
            "(run the evaluation pipeline first, or pass --path)"
        )
    if last is not None and last < 1:
        raise ValueError(f"last={last}: must be at least 1")
    versions = _version_files(path)
    # oldest first: by timestamp, then by name (names that are not timestamps last)
    versions.sort(key=lambda v: (v[1] is None, v[1] or pd.Timestamp.min, v[0]))
    rows: list[dict[str, Any]] = []
    kept = 0
    for version, timestamp, file in reversed(versions):
        if last is not None and kept >= last:
            break
        try:
            records = records_of(json.loads(file.read_text()), source=str(file))
        except (ValueError, OSError) as exc:  # JSONDecodeError is a ValueError
            logger.warning("Skipping version %s: %s", version, exc)
            continue
        kept += 1
        block = []
        for record in records:
            metrics = {k: v for k, v in record.items() if k != "method" and _scalar(v)}
            block.append(
                {
                    "version": version,
                    "timestamp": timestamp,
                    "method": record["method"],
                    **metrics,
                }
            )
        rows[:0] = block  # prepend: versions are read newest first
    frame = pd.DataFrame(rows)
    if frame.empty:
        frame = pd.DataFrame(columns=list(KEY_COLUMNS))
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    if methods is not None:
        wanted = list(methods)
        frame = frame[frame["method"].isin(wanted)].reset_index(drop=True)
    return frame


def metric_columns(frame: pd.DataFrame) -> list[str]:
    """The metric columns of a :func:`load_history` frame, in order."""
    return [c for c in frame.columns if c not in KEY_COLUMNS]


def over_time(frame: pd.DataFrame, metric: str) -> pd.DataFrame:
    """One metric as a (version × method) table, e.g. to plot its trend."""
    table = frame.pivot_table(
        index="version", columns="method", values=metric, sort=False, aggfunc="first"
    )
    table.columns.name = None
    return table


def format_value(value: Any) -> str:
    """A table cell: ``–`` for missing, 4 decimals below 10, 1 decimal above."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, bool) or not isinstance(value, float):
        return str(value)
    return f"{value:.1f}" if abs(value) >= 10 else f"{value:.4f}"


def to_markdown(frame: pd.DataFrame, metrics: Sequence[str] | None = None) -> str:
    """A markdown table: version, method and ``metrics`` (default: those of
    :data:`DEFAULT_METRICS` present in ``frame``).

    Raises:
        ValueError: a requested metric is in no record.
    """
    available = metric_columns(frame)
    if metrics is None:
        metrics = [m for m in DEFAULT_METRICS if m in available]
    unknown = [m for m in metrics if m not in available]
    if unknown:
        raise ValueError(
            f"metrics {unknown} are in no saved comparison; available: {available}"
        )
    header = "| version | method | " + " | ".join(metrics) + " |"
    rule = "|---|---|" + "---:|" * len(metrics)
    lines = [header, rule]
    for record in frame.to_dict("records"):
        cells = [format_value(_py(record.get(m))) for m in metrics]
        lines.append(
            f"| {record['version']} | {record['method']} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines) + "\n"


def _py(value: Any) -> Any:
    """numpy scalars to Python ones (for formatting)."""
    return value.item() if hasattr(value, "item") else value


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog or "python -m hgt_cluster_kedro.reporting.history",
        description="Print every saved version of the method comparison as a "
        "markdown table (one row per run and method, oldest run first).",
    )
    parser.add_argument(
        "--path",
        default=DEFAULT_PATH,
        help=f"the comparison dataset's folder of versions (default: {DEFAULT_PATH})",
    )
    parser.add_argument(
        "--metrics",
        nargs="+",
        metavar="METRIC",
        help="metrics to show, e.g. nmi ari recall@50 "
        f"(default: those of {' '.join(DEFAULT_METRICS)} that were saved)",
    )
    parser.add_argument(
        "--methods", nargs="+", metavar="METHOD", help="only these methods"
    )
    parser.add_argument(
        "--last", type=int, metavar="N", help="only the N most recent runs"
    )
    return parser


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Command line entry point; returns the exit status."""
    args = build_parser(prog).parse_args(argv)
    try:
        frame = load_history(args.path, last=args.last, methods=args.methods)
        if frame.empty:
            sys.stderr.write(f"No saved comparison found under {args.path}\n")
            return 1
        sys.stdout.write(to_markdown(frame, args.metrics))
    except (FileNotFoundError, ValueError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s: %(message)s")
    sys.exit(main())
