"""hgt-cluster-kedro
"""

__version__ = "0.1"
