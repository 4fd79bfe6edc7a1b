"""Request corpora for the server-core tests: hostile requests and unusual valid ones."""
