"""Wiring of ``session_csv``: the ``session`` model and report on a session log
file (``session.csv``, e.g. Diginetica), with no user graph."""

from kedro.pipeline import Node, Pipeline

from ..session.nodes import clicks_from_file
from ..session.pipeline import model_pipeline


def create_pipeline(**kwargs) -> Pipeline:
    return (
        Pipeline(
            [
                Node(
                    func=clicks_from_file,
                    inputs="params:session",
                    outputs="session_clicks",
                    name="session_clicks_from_file",
                )
            ]
        )
        + model_pipeline()
    )
