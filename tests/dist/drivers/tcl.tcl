# Two devices sync through a bundle file from Tcl (Debian libsqlite3-tcl). Usage: tclsh tcl.tcl LIB_DIR WORK_DIR
package require sqlite3
lassign $argv lib work
set path [file join $lib sync0.so]

proc check {ok what} { if {!$ok} { puts stderr "tcl: $what"; exit 1 } }

proc device {db path work name id} {
    sqlite3 $db [file join $work $name.db]
    $db enable_load_extension 1; $db eval {SELECT load_extension($path)}
    $db enable_load_extension 0
    check [expr {[string length [$db onecolumn {SELECT sync_init()}]] == 32}] sync_init
    $db eval {CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT)}
    $db eval {SELECT sync_enable('todos')}
    set title "from $name"
    $db eval {INSERT INTO todos VALUES ($id, $title)}
}

device a $path $work A a1
set version [a onecolumn {SELECT sqlite_version()}]
lassign [split $version .] major minor
check [expr {$major * 1000 + $minor >= 3035}] "SQLite $version is too old: sqlite-sync needs 3.35 or later"
device b $path $work B b1
set bundle [file join $work a.bundle]
a eval {SELECT sync_bundle_out(NULL, $bundle)}
b eval {SELECT sync_bundle_in($bundle)}
check [expr {[b onecolumn {SELECT title FROM todos WHERE id = 'a1'}] eq "from A"}] "B lacks A's row"
set bundle [file join $work b.bundle]
b eval {SELECT sync_bundle_out(NULL, $bundle)}
a eval {SELECT sync_bundle_in($bundle)}
check [expr {[a onecolumn {SELECT title FROM todos WHERE id = 'b1'}] eq "from B"}] "A lacks B's row"
foreach db {a b} { check [expr {[$db onecolumn {SELECT count(*) FROM todos}] == 2}] "row count" }
puts "ok   dist/tcl sqlite3 package [package present sqlite3] (Tcl [info patchlevel], SQLite $version): two devices synced"
