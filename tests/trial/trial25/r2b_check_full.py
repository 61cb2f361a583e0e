# r2's schedule, then a full bundle from a to d: d still lacks W.
import os
exec(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "r2_auto5_tables_apart.py")).read().replace("show(L)", ""))
print("full bundle a->d:", {k: v for k, v in sync("a", "d", full=True).items() if k.endswith("count")})
print("d has W:", conn("d").execute("SELECT * FROM t WHERE id='W'").fetchall())
