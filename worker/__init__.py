"""The Celery worker: tasks, the recorder that writes the store, the training glue."""
