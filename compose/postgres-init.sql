-- MLflow keeps its own backend store beside ours.
CREATE DATABASE mlflow OWNER bplab;
