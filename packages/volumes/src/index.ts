export { signBody, signRequest, verifyBodySignature } from './auth.js';
export { type BuildManifestOptions, buildManifest } from './build-manifest.js';
export {
  fetchManifest,
  type PeerOptions,
  type PullOptions,
  pullSnapshot,
  type TransferResult,
} from './client.js';
export {
  compileLimits,
  compileTransferConfig,
  type TransferConfig,
  type TransferLimits,
  type TransferLimitsOptions,
  type TransferOptions,
} from './config.js';
export { VolumeTransferError } from './errors.js';
export { type CopyVolumeOptions, copyVolume } from './local-copy.js';
export { diffManifests, type Manifest, type ManifestDiff, type ManifestEntry, type SkippedEntry } from './manifest.js';
export { findEscapingSymlink, parseManifest } from './manifest-check.js';
export { symlinkTargetProblem, volumePathProblem } from './paths.js';
export {
  type CallPeerOptions,
  callPeer,
  maxPeerCallQueryBytes,
  type PeerCall,
  type PeerCallAnswer,
  type PeerCallHandler,
} from './peer-calls.js';
export type { ProgressListener, TransferProgress } from './progress.js';
export { controlPaxKey, headerNames, manifestFormat, paxKeys, snapshotFormat } from './protocol.js';
export type { SnapshotHeader, SnapshotTrailer } from './sender.js';
export {
  createVolumeServer,
  type StartedVolumeServer,
  type StartVolumeServerOptions,
  startVolumeServer,
  type TransferEvent,
  type VolumeServer,
  type VolumeServerOptions,
} from './server.js';
export { racyWindowMs } from './stat-cache.js';
export { controlEntryHeader, volumeEntryHeader } from './tar-entries.js';
export {
  clientCertificateOf,
  clientTlsOptions,
  pooledClientTlsOptions,
  readVolumeTls,
  serverTlsOptions,
  type VolumeTlsFiles,
  type VolumeTlsMaterial,
} from './tls.js';
export { workDirFor } from './work-dir.js';
