# Two devices sync through a bundle file from Perl (Debian libdbd-sqlite3-perl). Usage: perl.pl LIB_DIR WORK_DIR
use strict;
use warnings;
use DBI;
my ($lib, $work) = @ARGV;
my $path = "$lib/sync0.so";

sub device {
    my ($name, $id) = @_;
    my $dbh = DBI->connect("dbi:SQLite:dbname=$work/$name.db", "", "", { RaiseError => 1, AutoCommit => 1 });
    $dbh->sqlite_enable_load_extension(1); $dbh->sqlite_load_extension($path);
    $dbh->sqlite_enable_load_extension(0);
    die "sync_init" unless length($dbh->selectrow_array("SELECT sync_init()")) == 32;
    $dbh->do("CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT)");
    $dbh->selectrow_array("SELECT sync_enable('todos')");
    $dbh->do("INSERT INTO todos VALUES (?, ?)", undef, $id, "from $name");
    return $dbh;
}

my $a = device("A", "a1");
my $version = $a->{sqlite_version};
my @v = split /\./, $version;
die "SQLite $version is too old: sqlite-sync needs 3.35 or later\n" if $v[0] * 1000 + $v[1] < 3035;
my $b = device("B", "b1");
$a->selectrow_array("SELECT sync_bundle_out(NULL, ?)", undef, "$work/a.bundle");
$b->selectrow_array("SELECT sync_bundle_in(?)", undef, "$work/a.bundle");
die "B lacks A's row" unless $b->selectrow_array("SELECT title FROM todos WHERE id = 'a1'") eq "from A";
$b->selectrow_array("SELECT sync_bundle_out(NULL, ?)", undef, "$work/b.bundle");
$a->selectrow_array("SELECT sync_bundle_in(?)", undef, "$work/b.bundle");
die "A lacks B's row" unless $a->selectrow_array("SELECT title FROM todos WHERE id = 'b1'") eq "from B";
for my $dbh ($a, $b) { die "row count" unless $dbh->selectrow_array("SELECT count(*) FROM todos") == 2 }
print "ok   dist/perl DBD::SQLite $DBD::SQLite::VERSION (Perl $^V, SQLite $version): two devices synced\n";
