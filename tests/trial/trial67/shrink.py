#!/usr/bin/env python3
"""Shrink a failing schedule: shrink.py steps.json KIND1[,KIND2] [tries]
Removes steps while the run still shows an anomaly of one of the given kinds (in `tries` runs, any)."""
import sys, json, subprocess, os
src, want, tries = sys.argv[1], sys.argv[2].split(','), int(sys.argv[3]) if len(sys.argv) > 3 else 2
sp = json.load(open(src))
steps = sp['steps']
tmp = '/tmp/trial67_shrink_%d.json' % os.getpid()
def fails(st):
    json.dump(dict(sp, steps=st), open(tmp, 'w'))
    for _ in range(tries):
        out = subprocess.run(['/tmp/venv/bin/python3', os.path.join(os.path.dirname(os.path.abspath(__file__)), 'harness.py'), '--replay', tmp], capture_output=True, text=True).stdout
        first = out.splitlines()[0] if out else ''
        if any("'%s'" % w in first for w in want):
            return True
    return False
assert fails(steps), 'does not fail'
n = 2
while len(steps) >= 2:
    chunk = max(1, len(steps) // n)
    removed = False
    for i in range(0, len(steps), chunk):
        cand = steps[:i] + steps[i + chunk:]
        if cand and fails(cand):
            steps = cand; n = max(n - 1, 2); removed = True
            print('  %d steps' % len(steps), flush=True)
            break
    if not removed:
        if chunk == 1: break
        n = min(len(steps), n * 2)
out = src.replace('.json', '') + '_min.json'
json.dump(dict(sp, steps=steps), open(out, 'w'))
print('minimal:', len(steps), 'steps ->', out)
