"""The golden fixture: a tiny biLM and classifier committed under tests/fixtures/golden, with their
expected outputs for a few Korean sentences (tests/test_golden.py asserts them to 1e-6).

It pins what property tests leave free: the normaliser and the tokenizer (the tokens of each raw
sentence, including an NFD, an HTML-entity, a zero-width and a masked form), the biLM's forward pass
(every layer of every token), the scalar mix, and the classifier's probabilities (served through its
saved text pipeline and layer precision). A change that moves any of them fails the test: if the
change is meant, regenerate the fixture and say why in the commit:

    PYTHONPATH=.:tests python -m helpers.golden        # from the repository root

which rewrites tests/fixtures/golden/ (classifier/ with its bilm/, and expected.json). A few tens of
KB; the weights are committed (.gitignore's negation for tests/fixtures/).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import unicodedata
from pathlib import Path

import numpy as np
import torch

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "golden"
SENTENCES = [
    "삼성전자 새 스마트폰 공개",
    "손흥민, 시즌 10호 골… 토트넘 3연승",
    unicodedata.normalize("NFD", "국회 예산안 통과") + " &amp; 시정연설",
    "○○○ 의원 &quot;반도체&quot;\u200b 법안 발의",
]


def expected_outputs(classifier_dir: Path) -> dict:
    """What the fixture's models give for SENTENCES: tokens, layers, the average mix, probabilities."""
    from elmo.embed.elmo import Elmo
    from elmo.task.classifier import Classifier

    clf = Classifier.load(classifier_dir)
    elmo = Elmo.load(classifier_dir / "bilm")
    out = []
    for text in SENTENCES:  # one at a time: each sentence alone in its batch
        emb = elmo.embed([text])
        out.append({"text": text, "tokens": emb.tokens[0], "layers": emb.layers[0].tolist(),
                    "mixed": emb.mixed[0].tolist()})
    probs = clf.predict_proba(SENTENCES)
    return {"labels": clf.labels, "sentences": out, "probs": probs.tolist()}


def build(dest: Path = FIXTURE) -> Path:
    from elmo.embed.cache import cached_layers
    from elmo.embed.elmo import Elmo
    from elmo.task.classifier import save_classifier
    from elmo.task.model import TaskConfig, TaskModel
    from elmo.task.train import TaskData, fit
    from elmo.task.words import TaskWords
    from elmo.text import Tokenizer
    from tiny_elmo import HEADLINES, make_bilm_dir

    labels = sorted(HEADLINES)
    texts = [(t, lab) for lab, ts in HEADLINES.items() for t in ts]
    with tempfile.TemporaryDirectory() as tmp:
        bilm_dir = make_bilm_dir(Path(tmp), Tokenizer("mecab"), seed=0)
        elmo = Elmo.load(bilm_dir)
        tokens = elmo.tokenize([t for t, _ in texts])
        words = TaskWords.build(tokens)
        y = np.array([labels.index(lab) for _, lab in texts])
        cache = cached_layers(elmo, tokens, Path(tmp) / "cache", model_dir=bilm_dir, dtype="float16",
                              progress=False)
        torch.manual_seed(0)
        model = TaskModel(TaskConfig(n_classes=len(labels), vocab_size=len(words), elmo_layers=elmo.n_layers,
                                     elmo_dim=elmo.dim, word_dim=8, hidden=8, dropout=0.0, elmo_dropout=0.0))
        data = TaskData([words.ids(t) for t in tokens], y, cache)
        fit(model, data, data, labels, batch_size=6, lr=0.02, weight_decay=0.0, max_epochs=5, patience=5,
            grad_clip=5.0, seed=0, log=lambda s: None)
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        save_classifier(dest / "classifier", model=model, labels=labels, words=words, pipeline=elmo.pipeline,
                        max_tokens=64, bilm_dir=bilm_dir, layer_dtype="float16")
    expected = expected_outputs(dest / "classifier")
    (dest / "expected.json").write_text(json.dumps(expected, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return dest


if __name__ == "__main__":
    print(build())
