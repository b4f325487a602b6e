"""What a job is held to before it exists, shared by the API, sweeps and workers: its name,
experiment, tags and time limits (`metadata`, `time_limits`), every check and limit (`checks`), and
what an exception may tell a client about it (`public_errors`)."""
