"""Primitives: typed errors, the HTTP exchange and its SSRF guard, the retry schedule, signing, secret encryption, ids.

Nothing here imports Hookyard beyond `app.config`."""
