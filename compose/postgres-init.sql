-- MLflow keeps its own backend store beside ours.
CREATE DATABASE mlflow OWNER bplab;
-- and its basic-auth app keeps its users and permissions in another.
CREATE DATABASE mlflow_auth OWNER bplab;
