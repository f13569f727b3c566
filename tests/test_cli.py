"The command line as a user runs it: the installed `lesion_fastai` script in a subprocess."
import json, subprocess, sys
from pathlib import Path
import numpy as np
import pandas as pd
from lesion_fastai.data import read_mask, save_mask
from lesion_fastai.demo import demo_set

EXE = str(Path(sys.executable).with_name('lesion_fastai'))

def _run(*args, **kw):
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, **kw)

def test_help():
    res = _run('--help')
    assert res.returncode == 0 and all(c in res.stdout for c in ('demo', 'check', 'train', 'predict', 'evaluate'))

def test_demo(tmp_path):
    "README command 1's job: demo set, DataBlock, a saved batch, a scored trivial prediction"
    res = _run('demo', '--out', tmp_path/'out', '--n', 12, '--minutes', 0.3)
    assert res.returncode == 0, res.stderr
    assert (tmp_path/'out'/'batch.png').stat().st_size > 10_000
    assert len(list((tmp_path/'out'/'otsu').glob('*_segmentation.png'))) == 12
    assert len(list((tmp_path/'out'/'pred').glob('*_segmentation.png'))) == 12
    assert (tmp_path/'out'/'model'/'model.pkl').exists() and 'thresholded Jaccard: model' in res.stdout

def test_evaluate_json_and_csv(tmp_path):
    src = demo_set(n=6)
    pred = tmp_path/'pred'
    for i, f in enumerate(sorted((src/'masks').iterdir())):
        m = read_mask(f)
        if i == 0: m[:] = 0                        # one empty prediction
        if i == 1: m = np.roll(m, 8, axis=1)       # one shifted prediction
        save_mask(m, pred/f.name.replace('_segmentation', ''))   # any naming: <ID>.png
    res = _run('evaluate', '--truth', src/'masks', '--pred', pred, '--json', '--csv', tmp_path/'s.csv')
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    for k in ('threshold_jaccard', 'jaccard', 'dice', 'accuracy', 'sensitivity', 'specificity', 'n_images'): assert k in out
    assert out['n_images'] == 6
    per = pd.read_csv(tmp_path/'s.csv', index_col=0)
    assert len(per) == 6 and per['jaccard'].min() == 0.0
    assert abs(per['threshold_jaccard'].mean() - out['threshold_jaccard']) < 1e-12
    table = _run('evaluate', '--truth', src/'masks', '--pred', pred)
    assert table.returncode == 0 and 'over 6 images' in table.stdout

def test_command_help():
    "Each command's --help shows the docments and defaults of its function, with the CLI's spellings"
    res = _run('train', '--help')
    assert res.returncode == 0, res.stderr
    out = ' '.join(res.stdout.split())
    for s in ('--valid-fold', '--no-tta', '--checkpoint-every', '--frozen-epochs', '{auto,require,none}',
              'A name from `ARCHS` or an encoder name', 'Split and training seed (default: 42)'): assert s in out, s
    res = _run('classify-train', '--help')
    assert res.returncode == 0 and '[--masks MASKS | --seg-model SEG_MODEL]' in ' '.join(res.stdout.split())

def test_usage_errors(tmp_path):
    "A usage error is argparse's: status 2 and a usage line, no traceback"
    res = _run('classify-train', '--images', tmp_path, '--labels', tmp_path/'l.csv', '--out', tmp_path/'o',
               '--masks', tmp_path, '--seg-model', tmp_path)
    assert res.returncode == 2 and 'not allowed with argument' in res.stderr and 'Traceback' not in res.stderr
    res = _run('predict', '--model', tmp_path, '--images', tmp_path)
    assert res.returncode == 2 and 'required: --out' in res.stderr
