"""Genre fidelity: does a story read like the genre it was asked for?

    clf = GenreClassifier.fit(train_texts, train_labels)
    clf.predict(story_texts)

A logistic regression on all-MiniLM-L6-v2 embeddings, trained on the dataset's
training passages of every catalog group, `other` included (so a story that reads like
neither genre can say so). Its accuracy is measured on the test split, which with
`split.holdout_books` holds whole books the classifier never saw.
"""

from __future__ import annotations

from components.evaluate.embed import embed


class GenreClassifier:
    def __init__(self, model, labels: list[str]):
        self.model, self.labels = model, labels

    @classmethod
    def fit(cls, texts: list[str], labels: list[str], seed: int = 42) -> "GenreClassifier":
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(max_iter=2000, C=4.0, random_state=seed)
        model.fit(embed(texts), labels)
        return cls(model, sorted(set(labels)))

    def predict(self, texts: list[str], vectors=None) -> list[str]:
        """The genre of each text; pass `vectors` (their embeddings) if already computed."""
        if not texts:
            return []
        return list(self.model.predict(embed(texts) if vectors is None else vectors))

    def accuracy(self, texts: list[str], labels: list[str]) -> dict:
        predicted = self.predict(texts)
        by_label = {}
        for label in sorted(set(labels)):
            pairs = [(p, t) for p, t in zip(predicted, labels) if t == label]
            by_label[label] = round(sum(p == t for p, t in pairs) / len(pairs), 4)
        overall = sum(p == t for p, t in zip(predicted, labels)) / len(labels) if labels else None
        return {"accuracy": round(overall, 4) if overall is not None else None, "by_label": by_label, "n": len(labels)}
