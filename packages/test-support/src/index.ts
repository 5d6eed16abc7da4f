export * from './child-output.js';
export * from './etcd.js';
export * from './ids.js';
export * from './logger.js';
export * from './secrets.js';
export * from './seeded-random.js';
export * from './temp-dir.js';
