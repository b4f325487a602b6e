"""Uploaded datasets: files read into tables, their canonical form and digest, and their use by jobs."""
