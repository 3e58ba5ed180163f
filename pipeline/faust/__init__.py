"""The Faust runtime of a worker: the app, its table, lanes, record batches and memory."""
