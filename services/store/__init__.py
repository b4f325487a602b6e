"""The SQL store: the log of everything the service knows (jobs, what their training recorded,
sweeps, tokens, the outbox, the MLflow mirror's cursors).

The one rule for transactions: **store functions never commit.** They read and write inside the
caller's transaction; the caller (a route, a task, a workflow such as advancing a sweep) owns it:
`with sessions.begin() as session:` in workers, `with transaction() as session:` in routes. A
function that needs several transactions (the outbox sending to the broker between two, a mirror
pass calling MLflow between two) takes a `sessionmaker` and opens each itself; no function commits
work it did not do.

Modules: `db` (engines and sessions), `columns` (the UTC datetime column type), `models` (tables and
the status enums), `jobs` (create, read, and every job status transition), `reaper`, `outbox`,
`metrics` (chunked points), `step_arrays` (gradients, traces), `checkpoints`, `tokens`,
`idempotency_keys`, `mirror_cursor` (the MLflow mirror's bookkeeping), `locks`, `upsert`, `retry`.
"""
