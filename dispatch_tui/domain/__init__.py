"""The dispatch rules: statuses, transitions, errors, the service and the command grammar.

Nothing here imports Textual; the desk, the board and the CLI all sit on top of this package.
"""
