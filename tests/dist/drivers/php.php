<?php
// Two devices sync through a bundle file from PHP (Debian php-sqlite3). SQLite3::loadExtension
// takes a name inside sqlite3.extension_dir. Usage: php -d sqlite3.extension_dir=LIB_DIR php.php WORK_DIR
$work = $argv[1];

function check($ok, $what) { if (!$ok) { fwrite(STDERR, "php: $what\n"); exit(1); } }

function device($work, $name, $id) {
    $db = new SQLite3("$work/$name.db");
    $db->enableExceptions(true);
    $db->loadExtension('sync0.so');
    check(strlen($db->querySingle("SELECT sync_init()")) == 32, "sync_init");
    $db->exec("CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT)");
    $db->querySingle("SELECT sync_enable('todos')");
    $st = $db->prepare("INSERT INTO todos VALUES (:id, :title)");
    $st->bindValue(':id', $id); $st->bindValue(':title', "from $name");
    $st->execute();
    return $db;
}

function call($db, $sql, $arg) {
    $st = $db->prepare($sql); $st->bindValue(1, $arg);
    return $st->execute()->fetchArray(SQLITE3_NUM)[0];
}

$version = SQLite3::version()['versionString'];
check(version_compare($version, '3.35', '>='), "SQLite $version is too old: sqlite-sync needs 3.35 or later");
$a = device($work, 'A', 'a1');
$b = device($work, 'B', 'b1');
call($a, "SELECT sync_bundle_out(NULL, ?)", "$work/a.bundle");
call($b, "SELECT sync_bundle_in(?)", "$work/a.bundle");
check($b->querySingle("SELECT title FROM todos WHERE id = 'a1'") === 'from A', "B lacks A's row");
call($b, "SELECT sync_bundle_out(NULL, ?)", "$work/b.bundle");
call($a, "SELECT sync_bundle_in(?)", "$work/b.bundle");
check($a->querySingle("SELECT title FROM todos WHERE id = 'b1'") === 'from B', "A lacks B's row");
foreach ([$a, $b] as $db) check($db->querySingle("SELECT count(*) FROM todos") == 2, "row count");
echo "ok   dist/php SQLite3 class (PHP " . PHP_VERSION . ", SQLite $version): two devices synced\n";
