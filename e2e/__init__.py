"""The whole install story, end to end (``pytest e2e``); see ``e2e/README.md``."""
