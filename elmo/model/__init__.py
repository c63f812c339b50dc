"""The ELMo biLM (Peters et al. 2018): char-CNN token encoder, forward and backward projected-LSTM
stacks, one tied output softmax.

* :mod:`elmo.model.config` — :class:`BiLMConfig`, the model's shape (config.json),
* :mod:`elmo.model.highway` and :mod:`elmo.model.char_cnn` — the token encoder,
* :mod:`elmo.model.bilm` — :class:`BiLM` (``forward``, ``layer_outputs``, ``loss``, save/load),
* :mod:`elmo.model.softmax` — full, sampled and adaptive output layers,
* :mod:`elmo.model.files` — the saved-model directory (config.json, weights.safetensors, vocab/).

(Analytic FLOPs per token are in benchmarks/flops.py; test helpers in tests/helpers/.)
"""

from elmo.model.bilm import BiLM, BiLMOutput, LMLoss
from elmo.model.config import BiLMConfig
from elmo.model.files import vocab_dir

__all__ = ["BiLM", "BiLMConfig", "BiLMOutput", "LMLoss", "vocab_dir"]
