"""The generate stage: seeded story sets per genre, model and training level."""
