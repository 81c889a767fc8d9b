"""hgt-cluster-kedro: user embeddings and clusters on heterogeneous graphs."""

__version__ = "0.1.0"
