"""The service layer: one transaction per action on top of `db/`, the reads the screens show,
and the executor that runs typed commands and owns every one-line answer.

Nothing here imports Textual or the screens.
"""
