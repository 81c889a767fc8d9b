"""Reporting over past runs.

``history`` (no Kedro imports) reads every saved version of ``comparison``;
``mlflow_datasets`` (Kedro, optional ``mlflow`` extra) logs the comparison to MLflow.
Modules are not imported here, so ``python -m hgt_cluster_kedro.reporting.history``
runs without importing anything twice.
"""
