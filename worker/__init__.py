"""Syndicate worker: the Celery app, its tasks and the pipeline stages they call."""
