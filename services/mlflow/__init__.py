"""What the API and the MLflow worker share about MLflow: its users and permissions per owner
(`owners`), the guard its server runs in front of every request (`guard`), and a spec as flat run
params (`run_params`)."""
