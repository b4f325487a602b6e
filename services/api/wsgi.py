"""gunicorn entry point: `gunicorn services.api.wsgi:app`."""

from engine import datasets
from services.api import create_app

app = create_app()
datasets.warm()  # checking a job on a builtin dataset should not pay scikit-learn's import
