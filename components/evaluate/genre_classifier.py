"""Genre fidelity: does a story read like the genre it was asked for?

    clf = GenreClassifier.fit(train_texts, train_labels)
    clf.predict(story_texts)
    clf.save("reference/")  ...  GenreClassifier.load("reference/")

A logistic regression on all-MiniLM-L6-v2 embeddings of whole texts (the mean of their
256-token windows), trained on the dataset's
training passages of every catalog group, `other` included (so a story that reads like
neither genre can say so). Its accuracy is measured on the test split, which with
`split.holdout_books` holds whole books the classifier never saw.

Only the fitted weights are kept (safetensors and JSON, not a pickle), and prediction is
the linear decision function itself, so a saved classifier loads without scikit-learn.
"""

from __future__ import annotations

import json
from pathlib import Path

from components.common.errors import TaletuneError
from components.evaluate.embed import embed_windows as embed  # whole texts: the mean of 256-token windows

WEIGHTS = "genre_classifier.safetensors"
LABELS = "genre_classifier.json"


class GenreClassifier:
    def __init__(self, coef, intercept, labels: list[str]):
        self.coef, self.intercept, self.labels = coef, intercept, labels

    @classmethod
    def fit(cls, texts: list[str], labels: list[str], seed: int = 42, vectors=None) -> "GenreClassifier":
        import numpy as np
        from sklearn.linear_model import LogisticRegression

        if len(set(labels)) < 2:
            raise TaletuneError(f"the genre classifier needs passages of at least two groups; the dataset has {sorted(set(labels))}")
        # C=1 (scikit-learn's default): over nine choices of held-out books it scored 0.89 balanced
        # on average against 0.88 for C=4 (benchmarks/genre_classifier.py).
        model = LogisticRegression(max_iter=2000, C=1.0, random_state=seed)
        model.fit(embed(texts) if vectors is None else vectors, labels)
        # C order: scikit-learn's coefficients may be Fortran-ordered, which safetensors would scramble.
        return cls(np.ascontiguousarray(model.coef_, dtype=np.float32), np.ascontiguousarray(model.intercept_, dtype=np.float32),
                   [str(c) for c in model.classes_])

    def predict(self, texts: list[str], vectors=None) -> list[str]:
        """The genre of each text; pass `vectors` (their embeddings) if already computed."""
        if not texts:
            return []
        scores = (embed(texts) if vectors is None else vectors) @ self.coef.T + self.intercept
        if scores.shape[1] == 1:  # two classes: one score, positive means the second label
            return [self.labels[int(s > 0)] for s in scores[:, 0]]
        return [self.labels[i] for i in scores.argmax(axis=1)]

    def accuracy(self, texts: list[str], labels: list[str], vectors=None) -> dict:
        predicted = self.predict(texts, vectors)
        by_label = {}
        for label in sorted(set(labels)):
            pairs = [(p, t) for p, t in zip(predicted, labels) if t == label]
            by_label[label] = round(sum(p == t for p, t in pairs) / len(pairs), 4)
        overall = sum(p == t for p, t in zip(predicted, labels)) / len(labels) if labels else None
        # Held-out books give groups of very different sizes; the mean over groups weighs each alike.
        balanced = sum(by_label.values()) / len(by_label) if by_label else None
        return {"accuracy": round(overall, 4) if overall is not None else None,
                "balanced_accuracy": round(balanced, 4) if balanced is not None else None, "by_label": by_label, "n": len(labels)}

    def save(self, folder: str | Path) -> None:
        from safetensors.numpy import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        save_file({"coef": self.coef, "intercept": self.intercept}, str(folder / WEIGHTS))
        (folder / LABELS).write_text(json.dumps({"labels": self.labels, "embedding": "sentence-transformers/all-MiniLM-L6-v2, mean of 256-token windows"}) + "\n")

    @classmethod
    def load(cls, folder: str | Path) -> "GenreClassifier":
        from safetensors.numpy import load_file

        folder = Path(folder)
        if not (folder / WEIGHTS).is_file():
            raise TaletuneError(f"{folder} holds no genre classifier ({WEIGHTS}); build it with `python -m components.evaluate.reference`")
        weights = load_file(str(folder / WEIGHTS))
        return cls(weights["coef"], weights["intercept"], json.loads((folder / LABELS).read_text())["labels"])
