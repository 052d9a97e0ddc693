"""The evaluate stage: sentiment, lexicon words, topics, diversity, fidelity and copying of story sets."""
