"Ensembles as a user meets them: `train --folds`, `predict` on an ensemble folder, a script combining two, resuming a killed run."
import json, os, signal, subprocess, sys, time
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
from lesion_fastai.demo import make_demo_set
from lesion_fastai.portable import openvino_wanted
from lesion_fastai.learner.card import card

ROOT = Path(__file__).resolve().parents[1]
EXE = str(Path(sys.executable).with_name('lesion_fastai'))
TINY = ['--size', 64, '--epochs', 1, '--bs', 4, '--lr', 2e-3]

def _run(*args, ok=True):
    res = subprocess.run([EXE, *map(str, args)], capture_output=True, text=True)
    if ok: assert res.returncode == 0, res.stderr[-3000:]
    return res

@pytest.fixture(scope='module')
def ensembles(tmp_path_factory):
    "Two tiny 2-fold ensembles trained by `lesion_fastai train --folds 2` (different seeds)"
    root = tmp_path_factory.mktemp('ens')
    make_demo_set(root/'data', n=10, prefix='ISIC_000')
    for name, seed in (('a', 1), ('b', 2)):
        res = _run('train', '--data', root/'data', '--out', root/name, '--folds', 2, '--seed', seed, *TINY)
        assert 'out-of-fold (10 images, TTA on)' in res.stdout, res.stdout[-2000:]
    return root

def test_ensemble_folder(ensembles):
    e = ensembles/'a'
    man = json.loads((e/'ensemble.json').read_text())
    assert [m['path'] for m in man['members']] == ['fold0', 'fold1'] and man['tta'] is True
    assert 0 < man['threshold'] < 1 and 0 <= man['qc_threshold'] <= 1 and man['oof']['n_images'] == 10
    oof = pd.read_csv(e/'oof.csv')
    assert sorted(oof.image_id) == sorted(p.stem for p in (ensembles/'data'/'images').iterdir())
    for f in ('fold0', 'fold1'): assert (e/f/'model.pkl').exists() and (e/f/'config.json').exists()

def test_ensemble_card(ensembles):
    "The ensemble's card: its out-of-fold figures with their intervals from oof.csv; each member has its own card"
    e = ensembles/'a'
    man, c, text = json.loads((e/'ensemble.json').read_text()), card(e), (e/'README.md').read_text()
    tj = c['validation']['scores']['threshold_jaccard']
    assert c['kind'] == 'segmentation ensemble' and c['model']['members'] == 2 and c['data']['n_images'] == 10
    assert abs(tj['value'] - man['oof']['threshold_jaccard']) < 1e-6 and tj['low'] <= tj['value'] <= tj['high']
    assert c['validation']['scores']['jaccard']['low'] is not None and c['model']['tta_views'] == list(range(8))
    assert '| threshold jaccard |' in text and 'Not a medical device.' in text
    assert [card(e/f)['kind'] for f in ('fold0', 'fold1')] == ['segmentation model']*2

def test_predict_ensemble_fresh_process(ensembles, tmp_path):
    "`predict --model ENSEMBLE` in a fresh process: masks at original size, the QC columns in the report"
    res = _run('predict', '--model', ensembles/'a', '--images', ensembles/'data'/'images', '--out', tmp_path/'p',
               '--truth', ensembles/'data'/'masks', '--no-overlays')
    assert 'QC:' in res.stdout and 'tta True' in res.stdout
    rep = pd.read_csv(tmp_path/'p'/'predictions.csv')
    assert len(rep) == 10 and {'qc_flag', 'disagreement', 'member_jaccard', 'threshold_jaccard'} <= set(rep.columns)
    assert rep.disagreement.between(0, 1).all() and rep.member_jaccard.between(0, 1).all()
    res = _run('predict', '--model', ensembles/'a', '--images', ensembles/'data'/'images', '--out', tmp_path/'q', '--no-tta')
    assert 'tta False' in res.stdout

def test_single_model_tta_from_its_config(ensembles, tmp_path):
    "A model folder predicts with TTA as its config.json says: on for new models, off for folders written without the key"
    import shutil
    from lesion_fastai.seg.ensemble import Ensemble
    member = ensembles/'a'/'fold0'
    assert json.loads((member/'config.json').read_text())['tta'] is True
    assert Ensemble.load(member).tta is True and Ensemble.load(member, tta=False).tta is False
    old = shutil.copytree(member, tmp_path/'old')
    cfg = json.loads((old/'config.json').read_text())
    del cfg['tta']
    (old/'config.json').write_text(json.dumps(cfg))
    assert Ensemble.load(old).tta is False

def test_example_script_combines_two_ensembles(ensembles, tmp_path):
    "examples/combine_ensembles.py imports the library, loads two ensemble folders and predicts with all 4 members"
    res = subprocess.run([sys.executable, str(ROOT/'examples'/'combine_ensembles.py'), ensembles/'a', ensembles/'b',
                          '--images', ensembles/'data'/'images', '--out', tmp_path/'out', '--truth', ensembles/'data'/'masks',
                          '--save', tmp_path/'combined'], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'Ensemble(4 members' in res.stdout and '10 images segmented' in res.stdout
    assert len(list((tmp_path/'out').glob('ISIC_*_segmentation.png'))) == 10
    man = json.loads((tmp_path/'combined'/'ensemble.json').read_text())
    a, b = (json.loads((ensembles/n/'ensemble.json').read_text()) for n in 'ab')
    assert len(man['members']) == 4 and abs(man['threshold'] - (a['threshold'] + b['threshold'])/2) < 1e-12
    res = _run('predict', '--model', tmp_path/'combined', '--images', ensembles/'data'/'images', '--out', tmp_path/'again', '--no-overlays')
    assert f"{'PortableModel' if openvino_wanted('auto') else 'Ensemble'}(4 members" in res.stdout   # on OpenVINO: converted

def test_refuses_damaged_ensembles(ensembles, tmp_path):
    "A damaged manifest and members that disagree on classes are refused with one clear line; nothing is written"
    import shutil
    bad = tmp_path/'bad'; shutil.copytree(ensembles/'a', bad)
    (bad/'ensemble.json').write_text('{"format": "lesion_fastai.ensemble/1", "members": [')
    res = _run('predict', '--model', bad, '--images', ensembles/'data'/'images', '--out', tmp_path/'o1', ok=False)
    assert res.returncode == 2 and 'ensemble.json: damaged manifest' in res.stderr and 'Traceback' not in res.stderr
    shutil.copy(ensembles/'a'/'ensemble.json', bad/'ensemble.json')
    c = json.loads((bad/'fold1'/'config.json').read_text()); c['classes'] = ['background', 'lesion', 'ruler']
    (bad/'fold1'/'config.json').write_text(json.dumps(c))
    res = _run('predict', '--model', bad, '--images', ensembles/'data'/'images', '--out', tmp_path/'o2', ok=False)
    assert res.returncode == 2 and 'fold1 has classes' in res.stderr
    assert not (tmp_path/'o1').exists() and not (tmp_path/'o2').exists() and not [p for p in tmp_path.iterdir() if p.name.startswith('.')]
    assert _run('train', '--data', ensembles/'data', '--out', tmp_path/'x', '--folds', 1, ok=False).returncode == 2

def test_killed_training_resumes(tmp_path):
    "A run killed mid-training resumes from its last checkpoint instead of starting over"
    make_demo_set(tmp_path/'data', n=10, prefix='ISIC_000')
    cmd = [EXE, 'train', '--data', str(tmp_path/'data'), '--out', str(tmp_path/'m'), '--size', '64', '--epochs', '10',
           '--bs', '4', '--lr', '2e-3', '--checkpoint-every', '0']
    state = tmp_path/'m'/'checkpoints'/'state.json'
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while time.time() - t0 < 300:
        if state.exists() and json.loads(state.read_text())['epoch'] >= 2: break
        assert p.poll() is None, 'training finished before it could be interrupted'
        time.sleep(0.1)
    p.send_signal(signal.SIGKILL); p.wait()
    done = json.loads(state.read_text())['epoch']
    assert not (tmp_path/'m'/'config.json').exists()
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"epoch {done + 1} of 10" in res.stdout, res.stdout[-2000:]
    cfg = json.loads((tmp_path/'m'/'config.json').read_text())
    assert cfg['resumed'] is True
    hist = pd.read_csv(tmp_path/'m'/'history.csv')
    assert list(hist.epoch) == list(range(10))              # every epoch once: none repeated, none lost
    assert not state.exists() and not list((tmp_path/'m'/'checkpoints').glob('last_e*'))

def test_killed_fold_resumes(tmp_path):
    "`train --folds 2` killed inside fold 1 keeps finished fold 0 and resumes fold 1 from its last checkpoint"
    make_demo_set(tmp_path/'data', n=10, prefix='ISIC_000')
    cmd = [EXE, 'train', '--data', str(tmp_path/'data'), '--out', str(tmp_path/'e'), '--folds', '2', '--size', '64',
           '--epochs', '8', '--bs', '4', '--lr', '2e-3', '--checkpoint-every', '0']
    state = tmp_path/'e'/'fold1'/'checkpoints'/'state.json'
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while time.time() - t0 < 400:
        if state.exists() and json.loads(state.read_text())['epoch'] >= 2: break
        assert p.poll() is None, 'training finished before fold 1 could be interrupted'
        time.sleep(0.1)
    p.send_signal(signal.SIGKILL); p.wait()
    done = json.loads(state.read_text())['epoch']
    assert (tmp_path/'e'/'fold0'/'config.json').exists() and not (tmp_path/'e'/'fold1'/'config.json').exists()
    assert not (tmp_path/'e'/'ensemble.json').exists()
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    assert 'fold 0 of 2: finished member' in res.stdout and f"epoch {done + 1} of 8" in res.stdout, res.stdout[-2000:]
    assert json.loads((tmp_path/'e'/'fold1'/'config.json').read_text())['resumed'] is True
    assert list(pd.read_csv(tmp_path/'e'/'fold1'/'history.csv').epoch) == list(range(8))
    assert (tmp_path/'e'/'ensemble.json').exists()
