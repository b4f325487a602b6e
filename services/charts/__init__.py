"""Charts drawn on the server as SVG: the drawing (`svg`: lines, scatter, parallel coordinates, the
decision boundary) and a job's charts from its points and model (`job`), for the pages and MLflow."""
