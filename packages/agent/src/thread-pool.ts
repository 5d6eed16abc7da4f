/**
 * libuv runs every asynchronous file system call on its thread pool, 4 threads unless told
 * otherwise before the first such call. A volume receive keeps several of them in `fsync`
 * for tens of ms each, and every other file call of the agent (a status, the next pull's
 * TLS files, a scan's stat cache) queued behind them during a relocation's final round.
 * Imported first by main.ts; an operator's own UV_THREADPOOL_SIZE wins.
 */
process.env.UV_THREADPOOL_SIZE ??= '16';
