"""Watches: alerts when a dog like a watched one is stored later (issue 19; docs/lost-and-found.md)."""
