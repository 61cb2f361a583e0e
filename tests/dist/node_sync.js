// Install test of the npm package: two devices sync through bundle files with better-sqlite3@12
// and require('sqlite-sync-ext').load(db). Usage: NODE_PATH=.../node_modules node node_sync.js WORK_DIR
'use strict';
const assert = require('assert');
const fs = require('fs');
const path = require('path');
const Database = require('better-sqlite3');
const syncExt = require('sqlite-sync-ext');

const work = process.argv[2];
const lib = syncExt.getLoadablePath();
assert.ok(fs.existsSync(lib), `getLoadablePath() ${lib} is not on disk`);
assert.ok(lib.includes('node_modules'), `not the installed package: ${lib}`);

function device(name, id) {
  const db = new Database(path.join(work, `${name}.db`));
  syncExt.load(db);
  assert.strictEqual(db.prepare('SELECT sync_init() AS d').get().d.length, 32);
  db.exec("CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT); SELECT sync_enable('todos');");
  db.prepare('INSERT INTO todos VALUES (?, ?)').run(id, `from ${name}`);
  return db;
}
const title = (db, id) => db.prepare('SELECT title FROM todos WHERE id = ?').pluck().get(id);

const a = device('A', 'a1');
const b = device('B', 'b1');
const aBundle = path.join(work, 'a.bundle');
const bBundle = path.join(work, 'b.bundle');
a.prepare('SELECT sync_bundle_out(NULL, ?)').get(aBundle);
b.prepare('SELECT sync_bundle_in(?)').get(aBundle);
assert.strictEqual(title(b, 'a1'), 'from A');
b.prepare('SELECT sync_bundle_out(NULL, ?)').get(bBundle);
a.prepare('SELECT sync_bundle_in(?)').get(bBundle);
assert.strictEqual(title(a, 'b1'), 'from B');
for (const db of [a, b]) assert.strictEqual(db.prepare('SELECT count(*) FROM todos').pluck().get(), 2);
const sqlite = a.prepare('SELECT sqlite_version()').pluck().get();
const bsq = require('better-sqlite3/package.json').version;
console.log(`ok   dist/node better-sqlite3 ${bsq} (Node ${process.version}, SQLite ${sqlite}): two devices synced`);
