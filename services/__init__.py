"""What the API and the workers share, and nothing of HTTP or task code: `settings` (one typed
object from the environment), `celery_config` (how both talk to the broker), `time_limits`, the
store (`store/`: the database, every query and status transition), and sweeps (`sweeps/`).
`migrate` brings a database to the latest schema; `up` is `make up`."""
