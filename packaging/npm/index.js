// sqlite-sync-ext: the sqlite-sync SQLite extension for Node (better-sqlite3, node:sqlite).
'use strict';
const path = require('path');

const SUFFIX = { win32: '.dll', darwin: '.dylib' }[process.platform] || '.so';

// Full path of the bundled library; SQLite derives the entry point sqlite3_sync_init from "sync0".
function getLoadablePath() {
  return path.join(__dirname, 'lib', 'sync0' + SUFFIX);
}

// Loads the extension into a connection that has loadExtension(path): better-sqlite3's Database,
// or node:sqlite's DatabaseSync opened with { allowExtension: true }.
function load(db) {
  db.loadExtension(getLoadablePath());
}

module.exports = { getLoadablePath, load };
