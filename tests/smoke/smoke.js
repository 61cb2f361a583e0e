// Loads the extension from Node (better-sqlite3@12), captures a write, and checks the op.
// Usage: node smoke.js path/to/sync0.so
const Database = require('better-sqlite3');
const assert = require('assert');

const db = new Database(':memory:');
db.loadExtension(process.argv[2]);
const device = db.prepare('SELECT sync_init() AS id').get().id;
assert.strictEqual(device.length, 32);
db.exec("CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT, data BLOB); SELECT sync_enable('notes');");
db.prepare('INSERT INTO notes VALUES (?, ?, ?)').run(1, 'héllo', Buffer.from([0, 255]));
const rows = db.prepare('SELECT kind, pk, "values" AS v FROM sync_log').all();
assert.deepStrictEqual(rows, [{ kind: 'insert', pk: '{"id":1}', v: '{"id":1,"body":"héllo","data":{"blob":"00ff"}}' }]);
assert.strictEqual(db.prepare('SELECT sync_clock() AS c').get().c, `{"${device}":1}`);
// Bundles over any transport: a BLOB (a Buffer in Node), inspection, status, a shared folder.
const fs = require('fs');
const os = require('os');
const path = require('path');
const folder = fs.mkdtempSync(path.join(os.tmpdir(), 'sync-smoke-'));
const blob = db.prepare('SELECT sync_bundle_out(NULL) AS b').get().b;
assert.ok(Buffer.isBuffer(blob) && blob.length > 0);
const info = JSON.parse(db.prepare('SELECT sync_bundle_info(?) AS i').get(blob).i);
assert.deepStrictEqual(info.tables, { notes: 1 });
const b = new Database(path.join(folder, 'b.db'));
b.loadExtension(process.argv[2]);
b.exec("SELECT sync_init(); CREATE TABLE notes(id INTEGER PRIMARY KEY, body TEXT, data BLOB); SELECT sync_enable('notes');");
const result = JSON.parse(b.prepare('SELECT sync_bundle_in(?) AS r').get(blob).r);
assert.strictEqual(result.applied_count, 1);
assert.deepStrictEqual(b.prepare('SELECT body FROM notes').all(), [{ body: 'héllo' }]);
const status = JSON.parse(b.prepare('SELECT sync_status() AS s').get().s);
assert.strictEqual(status.peers[0].device_id, device);
const shared = path.join(folder, 'shared');
fs.mkdirSync(shared);
b.prepare("INSERT INTO notes(id, body) VALUES (2, 'via the folder')").run();
assert.ok(JSON.parse(b.prepare('SELECT sync_folder_out(?) AS r').get(shared).r).ops > 0);
const got = JSON.parse(db.prepare('SELECT sync_folder_in(?) AS r').get(shared).r);
assert.strictEqual(got.imported, 1);
assert.strictEqual(db.prepare('SELECT body FROM notes WHERE id = 2').get().body, 'via the folder');
assert.strictEqual(db.prepare("SELECT count(*) AS n FROM sync_conflicts WHERE kind = 'concurrent'").get().n, 0);
console.log('ok   smoke/node transports (BLOB, info, status, folder)');
const version = db.prepare('SELECT sqlite_version() AS v').get().v;
console.log(`ok   smoke/node (SQLite ${version})`);
