"""Project commands added to ``kedro`` (Kedro reads ``<package>.cli``).

``kedro history [--metrics nmi ari recall@50 …] [--methods …] [--last N] [--path …]``
prints every saved version of ``comparison`` side by side (see
:mod:`hgt_cluster_kedro.reporting.history`); without ``--path`` it reads the
``comparison`` filepath from the catalog of ``--env`` (default: the run
environment). ``run`` is Kedro's own: ``python -m hgt_cluster_kedro`` and the
``hgt-cluster-kedro`` script look it up here once this module exists.
"""

from __future__ import annotations

from pathlib import Path

import click
from kedro.framework.cli.project import run  # noqa: F401  (see the docstring)
from kedro.framework.startup import ProjectMetadata


@click.group(name="hgt-cluster-kedro")
def cli() -> None:
    """Commands of the hgt-cluster-kedro project."""


def comparison_path(project_path: Path, env: str | None) -> Path:
    """The ``comparison`` dataset's filepath in the catalog of ``env``."""
    from kedro.framework.project import settings

    loader = settings.CONFIG_LOADER_CLASS(
        conf_source=str(project_path / settings.CONF_SOURCE),
        env=env,
        **settings.CONFIG_LOADER_ARGS,
    )
    entry = loader["catalog"].get("comparison")
    if not entry or "filepath" not in entry:
        raise click.ClickException("the catalog has no 'comparison' with a filepath")
    filepath = str(entry["filepath"])
    if "://" in filepath and not filepath.startswith("file://"):
        raise click.ClickException(
            f"comparison is stored at {filepath}: only local files can be read"
        )
    path = Path(filepath.removeprefix("file://"))
    return path if path.is_absolute() else project_path / path


@cli.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.option("--env", "-e", default=None, help="environment of the catalog")
@click.pass_context
def history(ctx: click.Context, env: str | None) -> None:
    """Past runs side by side (``--help`` for the options)."""
    from hgt_cluster_kedro.reporting.history import main

    args = list(ctx.args)
    if not any(a in ("-h", "--help") or a.startswith("--path") for a in args):
        metadata: ProjectMetadata = ctx.obj
        args = ["--path", str(comparison_path(metadata.project_path, env)), *args]
    code = main(args, prog="kedro history [--env ENV]")
    ctx.exit(code)
