// Types of sqlite-sync-ext: the sqlite-sync SQLite extension for Node.

/** Full path of the bundled library (lib/sync0.so, .dylib or .dll). */
export function getLoadablePath(): string;

/** Loads the extension: `db.loadExtension(getLoadablePath())` (better-sqlite3; node:sqlite with allowExtension). */
export function load(db: { loadExtension(path: string): unknown }): void;
