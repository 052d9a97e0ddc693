"""Check: every setting of a run, validated once before any retried task starts."""
