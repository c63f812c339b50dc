"""ELMo as a library: a frozen biLM's layers, ScalarMix, and the layer cache used by finetune.

* :mod:`elmo.embed.scalar_mix` — :class:`ScalarMix` (γ · Σ softmax(s)_j · h_j),
* :mod:`elmo.embed.elmo` — :class:`Elmo` (load a biLM directory or registry URI; embed texts or
  token lists) and :func:`embed_file` (``elmo embed FILE``),
* :mod:`elmo.embed.cache` — biLM layer outputs computed once and memory-mapped (fp16 on disk).
"""

from elmo.embed.elmo import Elmo, EmbedOutput
from elmo.embed.scalar_mix import ScalarMix

__all__ = ["Elmo", "EmbedOutput", "ScalarMix"]
