"""Training data for the biLM: memory-mapped id arrays, the Batch, the bucketing loader.

* :mod:`elmo.data.arrays` — writes and memory-maps the per-split arrays the vocab stage builds,
* :mod:`elmo.data.batch` — the :class:`Batch` dataclass and the collate function,
* :mod:`elmo.data.sampler` — :class:`BucketBatchSampler` (whole sentences of similar length),
* :mod:`elmo.data.loader` — :class:`SentenceDataset` and :func:`make_loader`,
* :mod:`elmo.data.tables` — checked parquet reading for stage inputs.

Importing this package does not import torch; the modules that need it do.
"""
