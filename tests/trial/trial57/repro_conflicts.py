# Shrunk from a random schedule: the three devices end with identical tables and clocks but
# different open conflicts, for good. b's backup is put back and written on before syncing;
# compaction after syncs. With FORK=1 (sync_fork() right after the put-back) they end alike.
from common import *


def sent(src, dst):
    r = send(src, dst)
    if r['lost_count'] or r['conflict_count']: print(f'  {src}->{dst}: lost {r["lost_count"]} conflicts {r["conflict_count"]}')


def x(k, sql): one(k, sql)
devices()
x('a', "INSERT INTO t VALUES ('r1','a1')"); x('b', "INSERT INTO t VALUES ('r7','b7')"); x('a', "INSERT INTO t VALUES ('r10','a10')")
sent('b', 'c'); sent('c', 'a'); sent('a', 'b')
back_up('b')
one('b', "SELECT sync_compact()")
x('b', "INSERT INTO t VALUES ('r22','b22')"); x('b', "UPDATE t SET v='b24' WHERE id='r10'")   # B, after the backup
x('c', "INSERT INTO t VALUES ('r25','c25')")
sent('b', 'a'); sent('c', 'a'); sent('a', 'c'); sent('a', 'b'); one('b', "SELECT sync_compact()")
sent('b', 'a'); sent('c', 'a'); one('a', "SELECT sync_compact()"); sent('b', 'c'); sent('a', 'c')
put_back('b')
x('b', "INSERT INTO t VALUES ('r39','b39')"); x('b', "UPDATE t SET v='b40' WHERE id='r1'")    # written before syncing
one('c', "SELECT sync_compact()")
x('b', "UPDATE t SET v='b44' WHERE id='r7'"); x('b', "INSERT INTO t VALUES ('r45','b45')")
sent('c', 'b')                                                                 # B's first sync after the restore
print('B now shows r10 =', one('b', "SELECT v FROM t WHERE id='r10'"), '| former_ids', one('b', "SELECT sync_status()->'$.former_ids'"))
x('b', "UPDATE t SET v='b51' WHERE id='r10'")                                   # B edits r10 having seen b24
for i in range(3):
    for s in 'abc':
        for d in 'abc':
            if s != d: sent(s, d)
for k in 'abc':
    c = db(k)
    print(k, 'r10 =', c.execute("SELECT v FROM t WHERE id='r10'").fetchall()[0][0],
          '| tables same:', c.execute("SELECT group_concat(id||'='||v) FROM (SELECT * FROM t ORDER BY 1)").fetchall()[0][0],
          '\n   open conflicts:', c.execute("SELECT pk, local_values, remote_values FROM sync_conflicts WHERE NOT resolved").fetchall(),
          '\n   clock:', c.execute("SELECT sync_clock()").fetchall()[0][0])
    c.close()
