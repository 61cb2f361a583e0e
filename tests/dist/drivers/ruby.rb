# Two devices sync through a bundle file from Ruby (Debian ruby-sqlite3). Usage: ruby.rb LIB_DIR WORK_DIR
require "sqlite3"
lib, work = ARGV
path = File.join(lib, "sync0.so")

def device(path, work, name, row_id)
  db = SQLite3::Database.new(File.join(work, "#{name}.db"))
  db.enable_load_extension(true); db.load_extension(path)
  db.enable_load_extension(false)
  raise "sync_init" unless db.get_first_value("SELECT sync_init()").length == 32
  db.execute("CREATE TABLE todos(id TEXT PRIMARY KEY, title TEXT)")
  db.execute("SELECT sync_enable('todos')")
  db.execute("INSERT INTO todos VALUES (?, ?)", [row_id, "from #{name}"])
  db
end

version = SQLite3::Database.new(":memory:").get_first_value("SELECT sqlite_version()")
abort "SQLite #{version} is too old: sqlite-sync needs 3.35 or later" if Gem::Version.new(version) < Gem::Version.new("3.35")
a = device(path, work, "A", "a1")
b = device(path, work, "B", "b1")
a.execute("SELECT sync_bundle_out(NULL, ?)", [File.join(work, "a.bundle")])
b.execute("SELECT sync_bundle_in(?)", [File.join(work, "a.bundle")])
raise "B lacks A's row" unless b.get_first_value("SELECT title FROM todos WHERE id = 'a1'") == "from A"
b.execute("SELECT sync_bundle_out(NULL, ?)", [File.join(work, "b.bundle")])
a.execute("SELECT sync_bundle_in(?)", [File.join(work, "b.bundle")])
raise "A lacks B's row" unless a.get_first_value("SELECT title FROM todos WHERE id = 'b1'") == "from B"
[a, b].each { |db| raise "row count" unless db.get_first_value("SELECT count(*) FROM todos") == 2 }
puts "ok   dist/ruby sqlite3 gem #{SQLite3::VERSION} (Ruby #{RUBY_VERSION}, SQLite #{version}): two devices synced"
