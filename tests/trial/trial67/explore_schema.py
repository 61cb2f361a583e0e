SCHEMA = """
CREATE TABLE IF NOT EXISTS sites(id TEXT PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))), code TEXT UNIQUE, name TEXT);
CREATE TABLE IF NOT EXISTS inspections(id TEXT PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))), site_id TEXT REFERENCES sites(id) ON DELETE CASCADE, inspector TEXT, status TEXT, notes TEXT, updated_at TEXT);
CREATE TABLE IF NOT EXISTS photos(id TEXT PRIMARY KEY DEFAULT (lower(hex(randomblob(16)))), inspection_id TEXT REFERENCES inspections(id), caption TEXT);
"""
