"The command line as a user runs it: the installed `lesion_fastai` script in a subprocess."
import json, os, re, subprocess, sys
from pathlib import Path
import numpy as np
import pytest
import pandas as pd
from lesion_fastai.io import read_mask, save_mask
from lesion_fastai.demo import demo_set

EXE = str(Path(sys.executable).with_name('lesion_fastai'))

def _run(*args, **kw):
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, **kw)

def test_help():
    res = _run('--help')
    assert res.returncode == 0 and all(c in res.stdout for c in ('demo', 'check', 'train', 'predict', 'evaluate'))

def test_demo(tmp_path):
    "README command 1's job: demo set, DataBlock, a saved batch, Otsu and the model scored on held-out images"
    res = _run('demo', '--out', tmp_path/'out', '--n', 12, '--n-test', 6, '--epochs', 2)
    assert res.returncode == 0, res.stderr
    assert (tmp_path/'out'/'batch.png').stat().st_size > 10_000
    assert len(list((tmp_path/'out'/'otsu').glob('demo_001[2-7]_segmentation.png'))) == 6
    assert len(list((tmp_path/'out'/'pred').glob('demo_001[2-7]_segmentation.png'))) == 6
    assert (tmp_path/'out'/'model'/'model.pkl').exists() and 'held-out (6 images)' in res.stdout

NUM = r'([-+]?[\d.]+)'
VERDICT = rf'held-out \((\d+) images\).*model {NUM}, Otsu {NUM}, difference {NUM} \[{NUM}, {NUM}\]'

def _demo_margin(out, seed:int, burn:bool=False)->tuple:
    "The README's demo with `seed` (beside a CPU burner per core if `burn`): (difference, low, high) model - Otsu"
    burner = lambda: subprocess.Popen([sys.executable, '-c', 'while True: pass'])
    burners = [burner() for _ in range(os.cpu_count() or 2)] if burn else []     # started only when asked
    try: res = _run('demo', '--out', out, '--seed', seed)
    finally:
        for b in burners: b.kill()
    assert res.returncode == 0, res.stderr
    n, model, otsu, diff, low, high = map(float, re.search(VERDICT, res.stdout).groups())
    assert n >= 20 and abs(model - otsu - diff) < 2e-4, res.stdout
    return diff, low, high

@pytest.mark.slow
def test_demo_beats_otsu_over_seeds(tmp_path):
    """The demo beats Otsu on its held-out images for three seeds: every margin is positive, and their mean exceeds
    twice their spread over the seeds (each seed's own 95 % interval is in the message). It trains a fixed number of
    epochs, so a busy machine changes its wall time only: one of the seeds runs beside a CPU burner per core."""
    runs = [_demo_margin(tmp_path/f'seed{s}', seed=s, burn=s == 2) for s in range(3)]
    diffs = np.array([d for d, _, _ in runs])
    assert (diffs > 0).all(), runs
    assert diffs.mean() - 2*diffs.std(ddof=1) > 0, runs

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
    for s in ('--valid-fold', '--tta, --no-tta', '--checkpoint-every', '--frozen-epochs', '{auto,require,none}',
              'A name from `ARCHS` or an encoder name', 'Split and training seed (default: 42)'):
        assert s in out, s
    assert re.search(r'--colour-constancy, --no-colour-constancy Shades of Gray [^-]*\(default: off\)', out), out
    out = ' '.join(_run('predict', '--help').stdout.split())
    assert '--overlays, --no-overlays Write `overlays/<ID>.jpg` (default: on)' in out, out
    res = _run('classify-train', '--help')
    assert res.returncode == 0 and '[--masks MASKS | --seg-model SEG_MODEL]' in ' '.join(res.stdout.split())

def test_usage_errors(tmp_path):
    "A usage error is argparse's: status 2 and a usage line, no traceback"
    res = _run('classify-train', '--images', tmp_path, '--labels', tmp_path/'l.csv', '--out', tmp_path/'o',
               '--masks', tmp_path, '--seg-model', tmp_path)
    assert res.returncode == 2 and 'not allowed with argument' in res.stderr and 'Traceback' not in res.stderr
    res = _run('predict', '--model', tmp_path, '--images', tmp_path)
    assert res.returncode == 2 and 'required: --out' in res.stderr

def _launch(tmp_path, *args):
    "`lesion_fastai ARGS` in two CPU processes, as `accelerate launch`/`torchrun` start it (`python -m lesion_fastai.cli`)"
    import os
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'ACCELERATE_USE_CPU': '1'}
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', '-m', 'lesion_fastai.cli', *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=400)

def test_train_folds_and_predict_under_a_launcher(tmp_path):
    "Under a 2-process launcher `train --folds` writes one ensemble folder and `predict` one CSV, as one process would"
    from lesion_fastai.demo import make_demo_set
    make_demo_set(tmp_path/'data', n=12)
    res = _launch(tmp_path, 'train', '--data', 'data', '--out', 'ens', '--folds', 2, '--size', 64, '--epochs', 1, '--bs', 4,
                  '--lr', 2e-3, '--pretrained', 'none')
    assert res.returncode == 0 and 'ensemble in ens' in res.stdout, res.stdout[-2000:] + res.stderr[-2000:]
    assert (tmp_path/'ens'/'ensemble.json').exists()
    res = _launch(tmp_path, 'predict', '--model', 'ens', '--images', 'data/images', '--out', 'pred', '--no-overlays')
    assert res.returncode == 0 and res.stdout.count('12 masks written to pred') == 1, res.stdout[-2000:] + res.stderr[-2000:]
    assert len(pd.read_csv(tmp_path/'pred'/'predictions.csv')) == 12 and not list(tmp_path.glob('.pred-shard*'))
    one = _run('predict', '--model', tmp_path/'ens', '--images', tmp_path/'data'/'images', '--out', tmp_path/'pred1', '--no-overlays')
    assert one.returncode == 0, one.stderr
    for f in (tmp_path/'pred1').glob('*_segmentation.png'): assert (read_mask(f) == read_mask(tmp_path/'pred'/f.name)).all(), f.name

def test_classify_train_folds_under_a_launcher(tmp_path):
    "Under a 2-process launcher `classify-train --folds 2` trains each member once, one per process, into one classifier folder"
    from lesion_fastai.demo import make_demo_set
    from lesion_fastai.cls.predict import classify_folder
    ids = make_demo_set(tmp_path/'data', n=12)
    pd.DataFrame({'image_id': ids, 'dx': ['dark', 'light']*6}).to_csv(tmp_path/'labels.csv', index=False)
    res = _launch(tmp_path, 'classify-train', '--images', 'data/images', '--labels', 'labels.csv', '--masks', 'data/masks',
                  '--out', 'cls', '--folds', 2, '--arch', 'resnet18', '--size', 32, '--full-cycles', 1, '--crop-cycles', 1,
                  '--cycle-len', 1, '--keep', 1, '--bs', 4, '--pretrained', 'none')
    out = res.stdout
    assert res.returncode == 0 and 'classifier in cls' in out, out[-2000:] + res.stderr[-2000:]
    for f in ('fold0', 'fold1'):                   # each member trained once (by one process), then kept by the main one
        assert out.count(f'training cls/{f}') == 1 and out.count(f'member {f}: validated') == 1, out
        assert out.count(f'finished member in cls/{f}') == 1, out
    assert out.count('labelled images') == 2      # the main process read the labels (and made the crops) for the others too
    man = json.loads((tmp_path/'cls'/'classifier.json').read_text())
    assert [m['path'] for m in man['members']] == ['fold0', 'fold1'] and man['classes'] == ['dark', 'light']
    rep = classify_folder(tmp_path/'cls', tmp_path/'data'/'images', tmp_path/'pred', masks=tmp_path/'data'/'masks', progress=False)
    assert len(rep) == 12 and set(rep['pred']) <= {'dark', 'light'}

def test_launcher_refusals(tmp_path):
    "Under a launcher: one model needs --epochs and --lr, one classifier member --folds; a command that does not share its work refuses; one line each"
    import os
    env = {**os.environ, 'WORLD_SIZE': '2'}
    res = _run('train', '--data', tmp_path, '--out', tmp_path/'m', '--epochs', 1, env=env)
    assert res.returncode == 2 and res.stderr == 'lesion_fastai train: error: --lr: one model trained over 2 processes needs --lr (lr_find runs in one process only)\n', res.stderr
    res = _run('classify-train', '--images', tmp_path, '--labels', tmp_path/'l.csv', '--out', tmp_path/'c', env=env)
    assert res.returncode == 2 and res.stderr.startswith('lesion_fastai classify-train: error: one classifier member trains in one process'), res.stderr
    res = _run('classify-predict', '--model', tmp_path, '--images', tmp_path, '--out', tmp_path/'p', env=env)
    assert res.returncode == 2 and res.stderr.startswith('lesion_fastai classify-predict: error: runs in one process'), res.stderr

def test_precision_flag():
    "`--precision` offers PRECISIONS; fp16 without CUDA is one error line"
    import torch
    assert '{fp32,bf16,fp16}' in _run('predict', '--help').stdout
    if torch.cuda.is_available(): return
    res = _run('predict', '--model', 'm', '--images', 'i', '--out', 'o', '--precision', 'fp16')
    assert res.returncode == 2 and res.stderr == 'lesion_fastai predict: error: precision fp16 needs a CUDA GPU; on a CPU use bf16 or fp32\n', res.stderr

def _serve_lines(capsys, *args)->tuple:
    "Exit status and stderr lines of `lesion_fastai serve` run in process on a model folder that does not exist"
    from lesion_fastai.cli import main
    status = main(['serve', '--model', 'no/such/model', *map(str, args)])
    return status, capsys.readouterr().err.splitlines()

def test_serve_bad_port_and_log_level_refused_up_front(capsys):
    "Refused with one line and status 2 before the model is loaded (the model does not even exist)"
    assert _serve_lines(capsys, '--port', 70000) == (2, ['lesion_fastai serve: error: port 70000: not a TCP port (1 to 65535)'])
    status, err = _serve_lines(capsys, '--log-level', 'bogus')
    assert status == 2 and err == ["lesion_fastai serve: error: log level 'bogus': not one of critical, error, warning, "
                                   "info, debug, trace"]
    assert _serve_lines(capsys, '--workers', 0) == (2, ['lesion_fastai serve: error: workers must be more than 0, got 0'])

def test_serve_beyond_loopback_warns_without_token(capsys, monkeypatch):
    "0.0.0.0 without a token: one warning line before the model is loaded; none with LESION_FASTAI_TOKEN set"
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    status, err = _serve_lines(capsys, '--host', '0.0.0.0', '--port', port)
    assert status == 2 and len(err) == 2 and 'no/such/model' in err[1], err
    assert err[0].startswith('lesion_fastai serve: warning: 0.0.0.0 is reachable from other machines') and 'TOKEN' in err[0]
    monkeypatch.setenv('LESION_FASTAI_TOKEN', 'abc')
    status, err = _serve_lines(capsys, '--host', '0.0.0.0', '--port', port)
    assert status == 2 and len(err) == 1 and 'no/such/model' in err[0], err
