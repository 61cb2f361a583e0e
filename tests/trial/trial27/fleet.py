# A fleet of devices in this directory (files PFX + name + '.db'), each import followed by
# sync_compact(), and the checks every script makes (mistakes.py, fuzz.py, v*.py).
import sys, os, shutil, traceback
from synclib import *
PFX = 'f_'
paths = {}
D = {}
writes = []      # (dev, id, v) every tracked insert of a new row
errors = []
def path(n): return PFX + n + '.db'
def new(n):
    paths[n] = path(n); D[n] = fresh(paths[n])
def close(n):
    D[n].close(); del D[n]
def reopen(n, load=True):
    D[n] = open_dev(paths[n], init=load, load=load)
def ins(n, tag):
    rid = f"{n}-{tag}"
    q(D[n], "INSERT INTO t VALUES(?,?,NULL)", rid, n)
    writes.append((n, rid))
def edit_r1(n, k):
    q(D[n], "UPDATE t SET v=? WHERE id='r1'", f"{n}{k}")
def hop(s, d):
    try:
        peer = did(D[d])
        blob = q1(D[s], "SELECT sync_bundle_out(?)", peer)
        r = j(D[d], "SELECT sync_bundle_in(?)", blob)
        if r.get('pending_count') or r.get('discarded_count'):
            print(f"   {s}->{d}: applied={r['applied_count']} pending={r['pending_count']} discarded={r['discarded_count']} conflicts={r['conflict_count']}")
        compact(D[d])
    except Exception as e:
        msg = f"{s}->{d}: {type(e).__name__}: {str(e)[:300]}"
        errors.append(msg); print('   ERROR', msg)
def sync_all(rounds=3, among=None):
    for _ in range(rounds):
        for s in (among or list(D)):
            for d in (among or list(D)):
                if s != d:
                    hop(s, d)
def check(label):
    same, tabs = report(D, label)
    names = {did(c): n for n, c in D.items()}
    for n, c in D.items():
        for f in status(c).get('former_ids', []):
            names.setdefault(f, n + '_old')
    for n, c in D.items():
        L = lost(c)
        if L:
            print(f"  sync_lost on {n}:", [(names.get(x[0], x[0][:6]), x[1], x[3], x[4], x[6]) for x in L])
        oc = open_conf(c)
        if oc: print(f"  open conflicts on {n}:", oc)
        s = status(c)
        if s['pending']['ops']: print(f"  pending on {n}:", s['pending'])
    # every tracked write: on every device's table, or listed in some sync_lost
    lost_pks = set()
    for c in D.values():
        for x in lost(c):
            lost_pks.add(json.loads(x[3]).get('id'))
    for n, rid in writes:
        where = [m for m, t in tabs.items() if any(r[0] == rid for r in t)]
        if len(where) != len(D):
            tag = 'listed in sync_lost' if rid in lost_pks else 'VANISHED (no sync_lost entry)'
            print(f"  write {rid} by {n}: on {where or 'no device'}; {tag}")
    print('  import errors so far:', len(errors))
    return same

