"""Helpers of scripts/build_samples.py, which builds the bundled offline text samples and tokenizers
under src/dodoco/data: `common` (records, hashing rules, registry downloads), `sources` (the
prose, code and multilingual document readers) and `mathgen` (the math problem generator).
"""
