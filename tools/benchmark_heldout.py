"""Recipes side by side on a source-stratified, lesion-grouped held-out split, each on one core, with paired statistics.

    python tools/benchmark_heldout.py --data ../shared/data/isic-dev --out runs/heldout --repeat 0 \\
        --arm loop='python tools/plain_loop.py --train {train} --images {test}/images --out {pred} --minutes 30' \\
        --arm one='lesion_fastai train --data {train} --out {model} --minutes 30 && lesion_fastai predict --model {model} --images {test}/images --out {pred}'

The split is `lesion_fastai.seg.sources.heldout_folders` (`--repeat` draws another one; `--lesions CSV` keeps the images of a
lesion together). Every arm's command runs at once, each with OMP_NUM_THREADS=1, in the folder `OUT/repeatR/ARM/`
(`{pred}`: its predicted masks, `{model}`: its model folder; `{train}`, `{test}`: the split's folders); an arm whose
`done` file exists is reused, so an interrupted benchmark resumes. Then every arm's masks are scored by the official
rules, and every arm is compared with the first, image by image: the paired difference with its 95 % interval
(`lesion_fastai.stats.paired_table`), wins, ties and losses, for all images and per source.

    python tools/benchmark_heldout.py --data ../shared/data/isic-dev --out runs/heldout --pool 0 1 --arm loop=x --arm one=x

pools finished repeats instead (`lesion_fastai.seg.sources.repeated_scores`: each image's mean over the repeats that
held it out) and reports the same tables over them, in `OUT/pooled/`."""
import argparse, os, re, shlex, subprocess, sys, time
from pathlib import Path

import pandas as pd

from lesion_fastai.metrics import score_folders
from lesion_fastai.stats import interval_table, paired_table
from lesion_fastai.seg.sources import heldout_folders, repeated_scores, source_pairs

ROOT = Path(__file__).resolve().parents[1]


def shell_command(cmd:str)->str:
    "`cmd` with this Python for a leading `python` and for `lesion_fastai`"
    py = shlex.quote(sys.executable)
    cmd = re.sub(r'(^|&& )python ', rf'\g<1>{py} ', cmd)
    return cmd.replace('lesion_fastai ', f'{py} -m lesion_fastai.cli ')


def start_arm(name:str, cmd:str, work:Path, core:int)->subprocess.Popen:
    "Start one arm on the core `core` alone, its output in `work/name/log`"
    d = work/name
    d.mkdir(parents=True, exist_ok=True)
    c = shell_command(cmd.format(train=work/'train', test=work/'test', pred=d/'pred', model=d/'model'))
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    print(f"started {name} on core {core}: {c}", flush=True)
    return subprocess.Popen(f"( time taskset -c {core} bash -c {shlex.quote(c)} ) > {d/'log'} 2>&1 && touch {d/'done'}",
                            shell=True, env=env, cwd=ROOT, executable='/bin/bash')


def _finished(running:dict, t0:float)->list:
    "The cores whose arm has ended (reported), taken out of `running`"
    ended = [core for core, (name, p) in running.items() if p.poll() is not None]
    for core in ended:
        name, p = running.pop(core)
        print(f"{name}: exit {p.returncode} after {(time.time() - t0)/60:.1f} min", flush=True)
    return ended


def run_arms(arms:dict, work:Path, cores:int):
    "Run every unfinished arm, each on a core of its own, at most `cores` at once, and wait for all of them"
    t0 = time.time()
    todo = [(name, cmd) for name, cmd in arms.items() if not (work/name/'done').exists()]
    running, free = {}, list(range(cores))
    while todo or running:
        while todo and free:
            core, (name, cmd) = free.pop(0), todo.pop(0)
            running[core] = (name, start_arm(name, cmd, work, core=core))
        time.sleep(2)
        free += _finished(running, t0)


def arm_scores(arms, work:Path)->pd.DataFrame:
    "Thresholded Jaccard of every finished arm, one column per arm, one row per held-out image"
    done = [a for a in arms if (work/a/'done').exists()]
    return pd.DataFrame({a: score_folders(work/'test'/'masks', work/a/'pred').threshold_jaccard for a in done})


def report(scores:pd.DataFrame, sources:pd.Series, out:Path, pairs=()):
    "Print and save the per-arm intervals and the paired comparisons: each arm with the first, and `pairs` (B, A)"
    base = scores.columns[0]
    ci = interval_table(scores, groups=sources)
    below = scores.lt(0.65).groupby(sources.reindex(scores.index)).sum().T.assign(all=scores.lt(0.65).sum())
    print(ci.round(4).to_string(index=False), '\n\nimages below 0.65:\n', below.to_string(), sep='')
    pairs = [(a, base) for a in scores.columns[1:]] + [tuple(p) for p in pairs]
    comp = pd.concat([paired_table(scores[b], scores[a], groups=sources).assign(arm=f"{b} - {a}")
                      for b, a in pairs], ignore_index=True)
    if len(comp): print('\n', comp.round(4).to_string(index=False), sep='')
    ci.to_csv(out/'intervals.csv', index=False)
    comp.to_csv(out/'paired.csv', index=False)
    scores.assign(source=sources.reindex(scores.index)).to_csv(out/'per_image.csv')


def pooled_report(a, pairs:list):
    "Report the repeats `a.pool` pooled image by image, in `OUT/pooled`"
    tables = [pd.read_csv(Path(a.out)/f'repeat{r}'/'per_image.csv', index_col=0) for r in a.pool]
    scores = repeated_scores([t.drop(columns='source') for t in tables])
    arms = [n for n in (s.split('=', 1)[0] for s in a.arm) if n in scores.columns]
    sources = source_pairs(a.data).set_index('image_id').source.reindex(scores.index)
    print(f"repeats {a.pool} pooled: {len(scores)} images held out at least once", flush=True)
    out = Path(a.out)/'pooled'
    out.mkdir(parents=True, exist_ok=True)
    report(scores[arms], sources, out, pairs=pairs)


def main(a):
    pairs = [p.split(':') for p in a.pair or []]
    if a.pool: return pooled_report(a, pairs)
    work = Path(a.out)/f'repeat{a.repeat}'
    split = heldout_folders(a.data, work, repeat=a.repeat, k=a.k, lesions=a.lesions)
    held = split[split.held_out]
    print(f"repeat {a.repeat}: {len(split) - len(held)} training, {len(held)} held out:",
          held.source.value_counts().to_dict(), flush=True)
    arms = dict(s.split('=', 1) for s in a.arm)
    if not a.report_only: run_arms(arms, work, cores=a.cores)
    report(arm_scores(arms, work), held.set_index('image_id').source, work, pairs=pairs)


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data', required=True, help='data folder: image/mask pairs and provenance.csv')
    p.add_argument('--out', required=True, help='benchmark folder: OUT/repeatR/{train,test,ARM}')
    p.add_argument('--repeat', type=int, default=0, help='which draw of the split')
    p.add_argument('--k', type=int, default=3, help='one image in K is held out')
    p.add_argument('--lesions', help='CSV of image ID -> lesion ID (images of one lesion stay together)')
    p.add_argument('--arm', action='append', required=True, help="NAME='COMMAND' with {train} {test} {pred} {model}")
    p.add_argument('--cores', type=int, default=os.cpu_count(), help='arms at once, one core each (default: every core)')
    p.add_argument('--pair', action='append', help='B:A, two arms to compare besides each arm against the first')
    p.add_argument('--pool', type=int, nargs='+', help='report these finished repeats pooled image by image, and run nothing')
    p.add_argument('--report-only', action='store_true', help='score the finished arms without starting the others')
    main(p.parse_args())
