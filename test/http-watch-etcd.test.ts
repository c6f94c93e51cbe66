// The same suite as http-watch.test.ts, on etcd instead of LevelDB (one suite, two backends).
process.env.TEST_STORAGE = 'etcd';
await import('./http-watch.test.js');
