# Greedy shrinker: python3 shrink.py runs/X.json OUT.json KEY[,KEY] [tries]
# Keeps removing steps (chunks, then single steps) while the replayed trace, followed by 3 all-pairs
# passes without compaction, still ends with every KEY in the check's diff (and 3 more passes do
# not mend it). Each candidate is tried `tries` times (device ids are random); all must fail.
import json, sys, os
sys.path.insert(0, '/tmp/h58')
import sim

src, dst, keys = sys.argv[1], sys.argv[2], sys.argv[3].split(',')
tries = int(sys.argv[4]) if len(sys.argv) > 4 else 1
o = json.load(open(src))
trace = o['trace'] if isinstance(o, dict) else o
mode = o.get('mode', 'direct') if isinstance(o, dict) else 'direct'


def fails_once(tr):
    s = sim.Sim('/tmp/h58/work/shrink', mode, scan=False)
    s.setup()
    for st in tr: s.run_step(list(st))
    for _ in range(3): sim.all_pairs(s)
    S, diff = s.check()
    if not all(k in diff for k in keys): return False
    if 'errors' not in keys and 'errors' in diff: return False
    ne = len(s.errors)
    for _ in range(3): sim.all_pairs(s)
    S, diff = s.check()
    if 'errors' in keys and len(s.errors) == ne: return False   # refused again in the last passes
    return all(k in diff for k in keys)


def fails(tr):
    return all(fails_once(tr) for _ in range(tries))


assert fails(trace), 'does not fail to begin with'
n = len(trace)
chunk = max(1, n // 2)
runs = 0
while True:
    i = 0; changed = False
    while i < len(trace):
        cand = trace[:i] + trace[i + chunk:]
        runs += 1
        if fails(cand):
            trace = cand; changed = True
            print(f'len {len(trace)} (chunk {chunk})', flush=True)
        else:
            i += chunk
    if chunk == 1 and not changed: break
    if not changed or chunk > 1: chunk = max(1, chunk // 2)
json.dump(dict(mode=mode, trace=trace), open(dst, 'w'))
print('final', len(trace), 'from', n, 'runs', runs)
for st in trace: print(st)
