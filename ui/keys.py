"""Session-state keys, in one place: pages and widgets name them by these constants."""

CORPUS_ID = "corpus_id"
"""The corpus the user works on (int)."""
RUN_ID = "run_id"
"""The run the Explore, Edit, Export and Evaluation pages show (int)."""
JOB_ID = "job_id"
"""The background run this session started last (int, a RunRegistry job id)."""

SIDEBAR_CORPUS = "sidebar_corpus"
SIDEBAR_RUN = "sidebar_run"

UPLOAD = "upload"
UPLOAD_COLUMN = "upload_text_column"
UPLOAD_PARSED = "upload_parsed"
"""(file id, text column, Corpus) of the last upload read, so a rerun does not read it again."""
TRUTH_COLUMN = "truth_column"

CONFIRM_DELETE_CORPUS = "confirm_delete_corpus"
CONFIRM_DELETE_RUN = "confirm_delete_run"
FLASH = "flash"
"""A message to show once on the next page load (after an action that reruns)."""
SEED_LABELS = "seed_labels"
"""Seed labels typed on the Run page: {0-based input row: label}."""
