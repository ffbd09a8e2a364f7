"""Screens of the desk and the board: thin layers over the domain service."""
