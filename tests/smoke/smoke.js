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
const version = db.prepare('SELECT sqlite_version() AS v').get().v;
console.log(`ok   smoke/node (SQLite ${version})`);
