//! The hash maps and sets of this crate: std's, with foldhash's fast hasher, seeded once per
//! process. An import keys maps by device, (device, seq) and row key hundreds of times per
//! device known; std's SipHash cost about 200 instructions a key there (a tenth of a hub's
//! import at 200 devices), foldhash a few. Its per-process seed keeps keys chosen in a hostile
//! bundle (device ids, row keys) from being made to collide in advance.

pub type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
pub type HashSet<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
