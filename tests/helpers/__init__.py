"""Test helpers, importable from any test as ``helpers.<module>`` (tests/ is on the path).

* :mod:`helpers.synthetic` — synthetic biLM batches of the loader's shape and whole synthetic
  vocab-stage workspaces (also used by benchmarks/bench_pretrain.py),
* :mod:`helpers.toy_workspace` — a tiny DVC + git workspace for the flows tests.

They live here, not in the package, so that editing one never reruns a pipeline stage or changes
pretrain's checkpoint code hash.
"""
