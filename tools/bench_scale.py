"""The challenge's scale on one machine: seconds and peak memory of `check`, of the resize cache and of one epoch's data
loading, at two or more pair counts, on a set made by `tools/make_synthetic_isic.py`. It checks nothing: quote its
table.

    python tools/make_synthetic_isic.py --n 10000 --out /tmp/isic10k
    python tools/bench_scale.py --data /tmp/isic10k --sizes 2500 10000 [--work DIR] [--draft 12]

For each count N it hard-links the first N pairs into a folder of their own, then runs each stage in a fresh process:
- check: `lesion_fastai check --data FOLDER`, through the CLI's entry point `cli.main` (it decodes and validates
  every pair, then reads every mask again as the ISIC scorer does);
- cache: `data.cache_pairs(find_pairs(FOLDER), size=384)` into an empty cache folder (one worker process per core);
- epoch: `data.seg_dataloaders(cached, valid_fold=None, size=128, bs=16)`, its training set iterated once.
`seconds` are the stage's own (the library imported first), `with start` adds the process's start and imports.
Memory: `main` is the stage's peak RSS (getrusage), `tree` the largest sum of the proportional set sizes (PSS) of the
process and all its worker processes, sampled every 0.1 s with psutil: forked workers share the main process's pages,
which PSS counts once (their RSS would count them once per process). With `--draft K` it also measures, on the K largest
distinct images, how far the cache's reduced-scale JPEG decoding (`Image.draft`) moves the cached pixels from a
full decode. The benchmark runs in a session of its own at autogroup nice -10 where the system allows it; other work
on the machine still makes the seconds noisy."""
import argparse, json, os, resource, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np
import psutil

STAGES = ('check', 'cache', 'epoch')

def subset(data:Path, n:int, dest:Path)->Path:
    "A folder of hard links to the first `n` pairs of `data` (same ISIC layout)"
    for sub in sorted(d for d in data.iterdir() if d.is_dir()):
        (dest/sub.name).mkdir(parents=True, exist_ok=True)
        for f in sorted(sub.iterdir())[:n]:
            if not (dest/sub.name/f.name).exists(): os.link(f, dest/sub.name/f.name)
    return dest

def tree_pss(p:psutil.Process)->int:
    "Proportional set size of `p` and all its descendants, in bytes: each shared page counted once over all of them"
    try: procs = [p, *p.children(recursive=True)]
    except psutil.NoSuchProcess: return 0
    total = 0
    for q in procs:
        try: total += q.memory_full_info().pss
        except psutil.NoSuchProcess: pass
    return total

def measured(cmd:list)->dict:
    "Run `cmd`, sampling its process tree's RSS; its seconds, the sampled peak, and the JSON it printed last"
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    ps, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        peak = max(peak, tree_pss(ps))
        time.sleep(0.1)
    out = proc.stdout.read().strip().splitlines()
    if proc.returncode: raise SystemExit(f"{cmd}: exit status {proc.returncode}\n" + '\n'.join(out[-5:]))
    return dict(wall=time.perf_counter()-t, tree_mb=peak/2**20, **json.loads(out[-1]))

def rusage_mb()->dict:
    "This process's peak RSS, in MiB"
    return dict(main_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024)

def stage_check(folder:Path, work:Path):
    "`lesion_fastai check --data FOLDER`, through the CLI's own entry point"
    from lesion_fastai.cli import main
    if main(['check', '--data', str(folder)]): raise SystemExit('check failed')
    return {}

def stage_cache(folder:Path, work:Path):
    "`cache_pairs` at 384 px into an empty folder; the cached table is kept for the epoch stage"
    from lesion_fastai.io import find_pairs
    from lesion_fastai.data import cache_pairs
    cached = cache_pairs(find_pairs(folder), size=384, dest=work/'cache')
    cached.to_pickle(work/'cached.pkl')
    return dict(workers=os.cpu_count())

def stage_epoch(folder:Path, work:Path):
    "One pass over the training DataLoader at 128 px, batch size 16"
    import pandas as pd
    from lesion_fastai.data import seg_dataloaders
    dls = seg_dataloaders(pd.read_pickle(work/'cached.pkl'), valid_fold=None, size=128, bs=16)
    batches = sum(1 for _ in dls.train)
    return dict(batches=batches)

def run_stage(name:str, folder:Path, work:Path):
    "Run one stage in this process (the library imported first, off the clock) and print its figures as JSON"
    import lesion_fastai.cli, lesion_fastai.data
    t = time.perf_counter()
    extra = globals()[f'stage_{name}'](folder, work)
    print(json.dumps({**extra, 'inner': time.perf_counter() - t, **rusage_mb()}))

def draft_error(files:list, size:int=384)->dict:
    "Largest mean and max absolute difference (grey levels) of the cache's drafted resize against a full decode"
    from PIL import Image
    from fastai.vision.utils import resize_to
    from lesion_fastai.io import load_image
    means, maxes, speed = [], [], []
    for f in files:
        t0 = time.perf_counter()
        full = load_image(f)
        t1 = time.perf_counter()
        drafted = load_image(f, draft=(size, size))
        speed.append((t1 - t0)/(time.perf_counter() - t1))
        new = resize_to(full, size)
        a, b = (np.asarray(i.resize(new, Image.BILINEAR, reducing_gap=3.0), np.float32) for i in (full, drafted))
        means.append(np.abs(a - b).mean())
        maxes.append(np.abs(a - b).max())
    return dict(images=len(files), mean_abs=round(float(max(means)), 3), max_abs=float(max(maxes)),
                decode_speedup=round(float(np.median(speed)), 2))

def largest(data:Path, k:int)->list:
    "The `k` largest distinct image files of `data` (hard links counted once)"
    imgs = [f for d in data.iterdir() if d.is_dir() and 'Input' in d.name for f in d.glob('*.jpg')]
    uniq = {f.stat().st_ino: f for f in imgs}
    return sorted(uniq.values(), key=lambda f: f.stat().st_size)[-k:]

def priority():
    "A session of its own at autogroup nice -10, where allowed; what was set"
    os.setsid()
    try: Path('/proc/self/autogroup').write_text('-10')
    except OSError as e: return f'autogroup unchanged ({e.strerror})'
    return 'autogroup nice -10'

def bench(a):
    "The table of every stage at every size"
    print(f"# {priority()}; {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} at the start", flush=True)
    print(f"{'pairs':>6} {'stage':6} {'seconds':>8} {'ms/pair':>8} {'with start':>10} {'main MiB':>9} {'tree MiB':>9}")
    for n in a.sizes:
        work = Path(tempfile.mkdtemp(prefix=f'bench{n}-', dir=a.work))
        folder = subset(a.data, n, work/'data')
        for s in STAGES:
            r = measured([sys.executable, __file__, '--stage', s, '--folder', str(folder), '--work', str(work)])
            print(f"{n:6d} {s:6} {r['inner']:8.1f} {1000*r['inner']/n:8.1f} {r['wall']:10.1f} {r['main_mb']:9.0f} "
                  f"{r['tree_mb']:9.0f}", flush=True)
    if a.draft: print('# draft vs full decode:', json.dumps(draft_error(largest(a.data, a.draft))))

def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--data', type=Path, help='a set from make_synthetic_isic.py')
    p.add_argument('--sizes', type=int, nargs='+', default=[2500, 10000])
    p.add_argument('--work', type=Path, default=None, help='where subsets and caches go (default: the temp folder)')
    p.add_argument('--draft', type=int, default=12, help='images for the draft-versus-full comparison (0: none)')
    p.add_argument('--stage', choices=STAGES, help=argparse.SUPPRESS)
    p.add_argument('--folder', type=Path, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.stage: run_stage(a.stage, a.folder, a.work)
    else: bench(a)

if __name__ == '__main__': main()
