"""Word and character vocabularies (built by the vocab stage on the train split).

* :mod:`elmo.vocab.words` — word ids (softmax targets), specials <pad> <unk> <bos> <eos>,
* :mod:`elmo.vocab.chars` — character ids per unit (bytes, syllables, jamo), truncation rule,
* :mod:`elmo.vocab.jamo` — Hangul syllable ↔ jamo by Unicode arithmetic,
* :mod:`elmo.vocab.vocabulary` — :class:`Vocabulary` (load/save, word_ids, char_ids, type_table),
* :mod:`elmo.vocab.build` — counting the train split and building a Vocabulary.
"""

from elmo.vocab.vocabulary import Vocabulary

__all__ = ["Vocabulary"]
