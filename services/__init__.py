"""What the API and the worker share: settings, the SQL store, the Celery configuration."""
