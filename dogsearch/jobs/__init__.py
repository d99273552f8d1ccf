"""Bulk indexing jobs: the same job code on Celery workers (Redis) or on an in-process runner (embedded)."""
