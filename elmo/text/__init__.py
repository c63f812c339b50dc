"""Korean text → normalised text → sentences → tokens: the text pipeline's one home.

:class:`elmo.text.pipeline.TextPipeline` (normaliser + tokenizer settings, saved with every model)
is how any text becomes what a model sees; :mod:`elmo.text.normalize` is its normaliser (the clean
stage runs it on the petitions) and :class:`elmo.text.tokenizer.Tokenizer` its tokenizer (sanitize,
sentence rules, MeCab-ko/Okt/Komoran), which the tokenize stage runs over shards of petitions in
parallel (:mod:`elmo.text.parallel`).
"""

from elmo.text.tokenizer import Tokenizer

__all__ = ["Tokenizer"]
