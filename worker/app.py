"""The Celery app: `celery -A worker.app worker`."""

from __future__ import annotations

from celery import Celery

from services.queue import celery_config
from services.settings import get_settings

celery_app = Celery("bplab")
celery_app.conf.update(celery_config(get_settings()))
celery_app.conf.imports = ("worker.tasks",)
