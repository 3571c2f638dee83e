"""A differential oracle for payload fidelity: a slow reference encoder written from docs/mapping.md,
Hypothesis strategies for tables of every column type, and a comparison of both."""
