"""The Celery broker as both sides use it: the configuration, sending train_job(job_id), counting the queue (`celery_config`)."""
