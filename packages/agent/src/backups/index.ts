export { BackupFailure, type BackupJobDeps, type BackupSource, takeBackup } from './backup-job.js';
export { BackupRunner, type BackupRunnerDeps } from './backup-runner.js';
export {
  type BackupMeta,
  type BackupStore,
  DirectoryBackupStore,
  type DirectoryBackupStoreOptions,
  type StoredBackup,
} from './backup-store.js';
