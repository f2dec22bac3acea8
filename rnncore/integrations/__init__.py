"""Integrations with other systems; each imports its system lazily (an optional extra).

* :mod:`rnncore.integrations.dask`: batch scoring of variable-length sequences with a compiled
  engine on a Dask cluster (``pip install rnncore[dask]``).
"""
