/**
 * The operator API's reply shapes (`/sf/v1`), declared once: the broker answers them and
 * `sf` reads them. Types only; records inside a reply are the etcd records' own types
 * (core), and fencing replies carry the fencing library's results.
 */
export type * from './credentials.js';
export type * from './explain.js';
export type * from './fencing.js';
export type * from './instances.js';
export type * from './nodes.js';
export type * from './schedulers.js';
export type * from './transfers.js';
export type * from './upgrades.js';
