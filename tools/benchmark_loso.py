"""Leave-one-source-out benchmark of the segmentation recipe: hold out each source of the data's provenance.csv in turn.

For every source (or those named with --sources), `lesion_fastai.seg.sources.leave_one_source_out` trains on the other
sources' images (one model, or with --folds an ensemble) to the --minutes budget, predicts the held-out source's images
as a folder with `predict_folder` (as a user would) and scores them with the official scorer's semantics. A source whose
model folder is finished is not retrained, so an interrupted benchmark resumes where it stopped.
With --cli each training is the installed `lesion_fastai train` command instead, timed from the shell as a whole
(start-up, caching and export included; --burner SOURCE runs a CPU-bound process beside that source's training): the
budget figure of a `--minutes` run as a user gets it.
Usage: python tools/benchmark_loso.py --data ../shared/data/isic-dev --out runs/loso --minutes 10
                                      [--folds 3] [--sources PH2 ...] [--tta | --no-tta] [--cli [--burner PH2]]
                                      [--set loss=ce+dice --set colour_constancy=True ...]   (TrainConfig settings)
Prints the summary (`loso_summary`: per source, pooled, mean of sources) as a markdown table and each training's budget
against its measured minutes; writes loso.csv, runs.csv and summary.csv in --out."""
import argparse, ast, inspect, json, math, subprocess, sys, time
from pathlib import Path
import pandas as pd

from lesion_fastai.config import LesionDataError, TrainConfig
from lesion_fastai.io import write_json
from lesion_fastai.seg.sources import (read_provenance, source_pairs, source_slug, link_folder, leave_one_source_out, loso_summary)

SETTINGS = [k for k in inspect.signature(TrainConfig).parameters if k != 'minutes']   # --minutes is its own option


def setting(s:str)->tuple:
    "A `--set key=value` pair: the value read with ast.literal_eval where it parses, else kept as text"
    k, sep, v = s.partition('=')
    if not sep or k not in SETTINGS: raise argparse.ArgumentTypeError(f"{s!r}: expected KEY=VALUE, KEY one of {', '.join(SETTINGS)}")
    try: return k, ast.literal_eval(v)
    except (ValueError, SyntaxError): return k, v


def cell(v)->str:
    "One markdown table cell: numbers without trailing zeros, missing values empty"
    if isinstance(v, float): return '' if math.isnan(v) else f'{v:g}'
    return str(v)


def markdown(df:pd.DataFrame)->str:
    "A DataFrame as a markdown table, its index first"
    head = [df.index.name or ''] + list(df.columns)
    rows = [[cell(i)] + [cell(v) for v in r] for i, r in zip(df.index, df.itertuples(index=False))]
    return '\n'.join('| ' + ' | '.join(map(str, r)) + ' |' for r in [head, ['---']*len(head)] + rows)


def cli_flags(settings:dict)->list:
    "`--set` settings as `lesion_fastai train` options: `--key value`, `--key`/`--no-key` for booleans"
    flag = lambda k: '--' + k.replace('_', '-')
    return [a for k, v in settings.items() for a in ([flag(k) if v else '--no-' + k.replace('_', '-')] if isinstance(v, bool) else [flag(k), str(v)])]


def cli_train(data, out:Path, source:str, minutes:float, folds=None, settings:dict=None, burner:bool=False):
    "Train without `source` by the installed CLI, timed as a whole command; records the minutes in `out/<slug>/run.json`"
    d, pairs = out/source_slug(source), source_pairs(data)
    if (d/'model'/'config.json').exists() or (d/'model'/'ensemble.json').exists(): return
    train = link_folder(pairs[pairs.source != source], d/'train_data')
    cmd = [str(Path(sys.executable).with_name('lesion_fastai')), 'train', '--data', str(train), '--out', str(d/'model'),
           '--minutes', str(minutes), *(['--folds', str(folds)] if folds else []), *cli_flags(settings or {})]
    print('$', ' '.join(cmd) + ('   (a CPU-bound process beside it)' if burner else ''), flush=True)
    burn = subprocess.Popen([sys.executable, '-c', 'while True: pass']) if burner else None
    t0 = time.time()
    try:
        with open(out/f'{source_slug(source)}.train.log', 'w') as f: rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode
    finally:
        if burn: burn.kill()
    if rc: raise SystemExit(f"error: {' '.join(cmd)} failed (status {rc}); see {out/(source_slug(source) + '.train.log')}")
    write_json(dict(source=source, n_train=int((pairs.source != source).sum()), n_test=int((pairs.source == source).sum()),
                    budget_minutes=minutes, train_minutes=round((time.time() - t0)/60, 3), burner=burner), d/'run.json')


def budget_table(runs:pd.DataFrame)->pd.DataFrame:
    "Each training's budget, its measured minutes and the deviation in percent of the budget"
    dev = (runs.train_minutes - runs.budget_minutes)/runs.budget_minutes*100
    return runs.set_index('source')[['n_train', 'budget_minutes', 'train_minutes']].assign(deviation_pct=dev.round(1).to_numpy())


if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--data', default='../shared/data/isic-dev', help='image/mask pairs and provenance.csv')
    p.add_argument('--out', default='runs/loso')
    p.add_argument('--minutes', type=float, help='training budget of each held-out source')
    p.add_argument('--folds', type=int, help='train an ensemble of this many folds per source (default: one model)')
    p.add_argument('--sources', nargs='+', help="hold out only these sources (short names, e.g. PH2)")
    p.add_argument('--tta', action=argparse.BooleanOptionalAction, default=None, help="override the models' TTA at prediction")
    p.add_argument('--set', type=setting, action='append', default=[], metavar='KEY=VALUE', help='a TrainConfig setting')
    p.add_argument('--cli', action='store_true', help='train with the installed `lesion_fastai train` command, timed as a whole')
    p.add_argument('--burner', help='with --cli: the source whose training runs next to a CPU-bound process')
    a = p.parse_args()
    out, settings = Path(a.out), dict(a.set)
    print(f"leave-one-source-out of {a.data} into {out}: minutes {a.minutes}, folds {a.folds}, tta {a.tta}, settings {settings}", flush=True)
    if a.cli and not a.minutes: raise SystemExit("error: --cli needs --minutes (the budget it measures)")
    try:
        names = sorted(set(read_provenance(a.data)))
        if (bad := [s for s in [*(a.sources or []), *([a.burner] if a.burner else [])] if s not in names]):
            raise SystemExit(f"error: unknown sources {bad}; the sources are {names}")
        for src in (a.sources or names) if a.cli else []:
            cli_train(a.data, out, src, a.minutes, a.folds, settings, burner=src == a.burner)
        table = leave_one_source_out(a.data, out, minutes=a.minutes, folds=a.folds, sources=a.sources, tta=a.tta,
                                     log=lambda s: print(s, flush=True), **settings)
    except LesionDataError as e: raise SystemExit(f"error: {e}")
    runs = pd.read_csv(out/'runs.csv')
    summary = loso_summary(table, runs)
    summary.to_csv(out/'summary.csv')
    print('\n' + markdown(summary) + '\n\n' + markdown(budget_table(runs)), flush=True)
