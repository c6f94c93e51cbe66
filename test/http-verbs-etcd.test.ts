// The same suite as http-verbs.test.ts, on etcd instead of LevelDB (one suite, two backends).
process.env.TEST_STORAGE = 'etcd';
await import('./http-verbs.test.js');
