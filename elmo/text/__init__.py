"""Korean text → sentences → tokens (sanitize, sentence rules, MeCab-ko/Okt/Komoran, parallel runs).

The public entry point is :class:`elmo.text.tokenizer.Tokenizer`; the tokenize stage runs it over
shards of petitions in parallel (:mod:`elmo.text.parallel`).
"""

from elmo.text.tokenizer import Tokenizer

__all__ = ["Tokenizer"]
