import tempfile
import os, sys
WORK = os.environ.get('IMMUT_WORK', os.path.join(tempfile.gettempdir(), 'immut'))  # generated shards live under WORK/gen, experiments under WORK/exp

import sys, glob, shutil, struct
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from check_map import parse_hashmap
import query
shutil.rmtree(WORK + '/exp/bad', ignore_errors=True); shutil.copytree(WORK + '/exp/mod', WORK + '/exp/bad')
seg = [s for s in glob.glob(WORK + '/exp/bad/segments/*') if 'immutable' in open(s + '/payload_index/config.json').read()][0]
for pat in ('*-k-map/values_to_points.bin', '*-n-map/values_to_points.bin'):
    p = glob.glob(seg + '/payload_index/' + pat)[0]
    m = parse_hashmap(p); b = bytearray(m['raw'])
    bk = list(m['buckets']); bk = bk[1:] + bk[:1]
    struct.pack_into('<%dQ' % len(bk), b, m['buckets_pos'], *bk)
    open(p, 'wb').write(b)
a, _ = query.run(WORK + '/exp/mod'); c, cc = query.run(WORK + '/exp/bad')
print('answers differ with rotated buckets:', sum(1 for x, y in zip(a, c) if x != y), 'of', len(a), 'changed files', cc)
