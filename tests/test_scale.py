"The resize cache at scale: parallel and serial give the same files, an interrupted run resumes, and items stream."
import multiprocessing, os, signal, time, types
from pathlib import Path
import numpy as np
import pytest
from PIL import Image
from lesion_fastai.config import LesionDataError
from lesion_fastai.io import find_pairs, check_pairs, save_image, save_mask
from lesion_fastai.data import cache_pairs
from lesion_fastai import pool

def _pair(d:Path, i:int, wh=(120, 90)):
    "Write pair `i`: a noisy image of size `wh` and a rectangle mask"
    w, h = wh
    img = np.random.default_rng(i).integers(0, 255, (h, w, 3), dtype=np.uint8)
    m = np.zeros((h, w), np.uint8)
    m[h//4:h//2, w//4:w//2] = 1
    save_image(Image.fromarray(img), d/'images'/f'ISIC_{i:07d}.jpg', quality=90)
    save_mask(m, d/'masks'/f'ISIC_{i:07d}_segmentation.png')

def _data(d:Path, n:int, distinct:int=None, wh=(120, 90))->Path:
    "`n` pairs in `d`; beyond `distinct`, hard links to the first ones"
    distinct = distinct or n
    for i in range(distinct): _pair(d, i, wh)
    for i in range(distinct, n):
        for sub, name in (('images', 'ISIC_{:07d}.jpg'), ('masks', 'ISIC_{:07d}_segmentation.png')):
            os.link(d/sub/name.format(i % distinct), d/sub/name.format(i))
    return d

def _files(c:Path)->dict:
    "name → bytes of the cache folder's finished files (temporary `.tmp-*` ones left out)"
    return {f.name: f.read_bytes() for f in sorted(c.iterdir()) if not f.name.startswith('.')}

def test_parallel_same_as_serial(tmp_path):
    "Two worker processes write the same files, and return the same table, as one process"
    pairs = find_pairs(_data(tmp_path/'data', 8))
    serial = cache_pairs(pairs, size=32, dest=tmp_path/'c0', n_workers=0)
    par = cache_pairs(pairs, size=32, dest=tmp_path/'c2', n_workers=2)
    assert len(_files(tmp_path/'c0')) == 16 and _files(tmp_path/'c0') == _files(tmp_path/'c2')
    assert [Path(p).name for p in serial['image']] == [Path(p).name for p in par['image']]
    assert serial[['orig_w', 'orig_h', 'image_id']].equals(par[['orig_w', 'orig_h', 'image_id']])

def test_resumes_after_error(tmp_path):
    "A bad pair stops the run; once fixed, the pairs cached before are kept as they are and the rest is cached"
    data = _data(tmp_path/'data', 8)
    save_mask(np.zeros((10, 10), np.uint8), data/'masks'/'ISIC_0000005_segmentation.png')
    with pytest.raises(LesionDataError, match='ISIC_0000005'):
        cache_pairs(find_pairs(data), size=32, dest=tmp_path/'c', n_workers=0)
    before = {f.name: f.stat().st_mtime_ns for f in (tmp_path/'c').iterdir()}
    assert sorted({n[:12] for n in before}) == [f'ISIC_{i:07d}' for i in range(5)] and len(before) == 10
    _pair(data, 5)
    cache_pairs(find_pairs(data), size=32, dest=tmp_path/'c', n_workers=2)
    assert {n: (tmp_path/'c'/n).stat().st_mtime_ns for n in before} == before
    cache_pairs(find_pairs(data), size=32, dest=tmp_path/'fresh', n_workers=0)
    assert _files(tmp_path/'c') == _files(tmp_path/'fresh')

def _cache_alone(data:Path, c:Path):
    "Cache `data` into `c` in 2 worker processes, in a session of its own (so that one signal reaches them all)"
    os.setsid()
    cache_pairs(find_pairs(data), size=64, dest=c, n_workers=2)

def _kill_midway(data:Path, c:Path, at:int=8)->int:
    "Cache `data` into `c` in a forked process, SIGKILL it and its workers once `at` files are there; the exit status"
    p = multiprocessing.get_context('fork').Process(target=_cache_alone, args=(data, c))
    p.start()
    while p.is_alive() and (not c.is_dir() or len(list(c.iterdir())) < at): time.sleep(0.01)
    if p.is_alive(): os.killpg(p.pid, signal.SIGKILL)
    p.join()
    return p.exitcode

def test_resumes_after_kill(tmp_path):
    "A run killed midway (main process and workers) leaves only whole files; the next run completes the same cache"
    data = _data(tmp_path/'data', 60, distinct=4, wh=(800, 600))
    assert _kill_midway(data, tmp_path/'c') == -signal.SIGKILL
    left = _files(tmp_path/'c')
    assert 0 < len(left) < 120
    for name in left: Image.open(tmp_path/'c'/name).load()                 # every finished file decodes in full
    cache_pairs(find_pairs(data), size=64, dest=tmp_path/'c', n_workers=2)
    assert all(_files(tmp_path/'c')[n] == b for n, b in left.items())
    cache_pairs(find_pairs(data), size=64, dest=tmp_path/'fresh', n_workers=2)
    assert _files(tmp_path/'c') == _files(tmp_path/'fresh')

def test_streamed(tmp_path, monkeypatch):
    "`check_pairs` and `cache_pairs` hand `pool_map` a generator of rows, never a list of the table's rows"
    import lesion_fastai.data, lesion_fastai.io
    seen = []
    def spy(f, items, **kwargs):
        seen.append(items)
        return pool.pool_map(f, items, **kwargs)
    for m in (lesion_fastai.data, lesion_fastai.io): monkeypatch.setattr(m, 'pool_map', spy)
    pairs = find_pairs(_data(tmp_path/'data', 3))
    check_pairs(pairs, n_workers=2)
    cache_pairs(pairs, size=32, dest=tmp_path/'c', n_workers=2)
    assert len(seen) == 2 and all(isinstance(s, types.GeneratorType) for s in seen)

def test_window_bounds_what_is_held():
    "However many items, `pool_map` holds at most `window` of them between reading an item and handing on its result"
    pulled, held = [0], []
    def items():
        for i in range(500):
            pulled[0] += 1
            yield -i
    for k, r in enumerate(pool.pool_map(abs, items(), n_workers=2, window=6)):
        assert r == k
        held.append(pulled[0] - k)
    assert max(held) == 6 and pulled[0] == 500

def test_workers_by_count():
    "Small sets stay in this process; large ones get a process per core unless told otherwise"
    assert pool.pool_workers(None, 63) == 0 and pool.pool_workers(None, 64) >= 1 and pool.pool_workers(0, 10**6) == 0
