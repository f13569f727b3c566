"""`lesion_fastai evaluate` is the official scorer, input for input: for every kind of mask file, as the prediction and as
both truth and prediction, it gives `isic-challenge-scoring`'s own scores (to 1e-9) or refuses where the scorer refuses.
The scorer runs in process (`SegmentationScore.from_dir`, its own folder reader)."""
import io, json, warnings
from contextlib import redirect_stdout, redirect_stderr
from pathlib import Path
import numpy as np
import pytest
from PIL import Image
from conftest import _isic_dev
from lesion_fastai.cli import main

scoring = pytest.importorskip('isic_challenge_scoring')
from isic_challenge_scoring.segmentation import SegmentationScore
from isic_challenge_scoring.types import ScoreError

METRICS = ('accuracy', 'sensitivity', 'specificity', 'jaccard', 'threshold_jaccard', 'dice')

def _ramp(m):
    "A probability-like grey map: lesion 129…255, background 0…128"
    r = np.linspace(0, 1, m.size).reshape(m.shape)
    return np.where(m > 0, 129 + r*126, r*128).astype(np.uint8)

KINDS = {                  # name: (0/1 mask → PIL image, file suffix)
    '0/255':          (lambda m: Image.fromarray(m*255), '.png'),
    '1-bit':          (lambda m: Image.fromarray(m*255).convert('1'), '.png'),
    '0/1':            (lambda m: Image.fromarray(m), '.png'),
    '0/100':          (lambda m: Image.fromarray(m*100), '.png'),
    '0/200':          (lambda m: Image.fromarray(m*200), '.png'),
    'grey ramp':      (lambda m: Image.fromarray(_ramp(m)), '.png'),
    'all lesion 200/255': (lambda m: Image.fromarray(np.where(m > 0, 255, 200).astype(np.uint8)), '.png'),
    'greyscale JPEG': (lambda m: Image.fromarray(m*255), '.jpg'),
    'RGB':            (lambda m: Image.fromarray(np.stack([m*255]*3, -1)), '.png'),
    'RGB JPEG':       (lambda m: Image.fromarray(np.stack([m*255]*3, -1)), '.jpg'),
    'RGBA':           (lambda m: Image.fromarray(np.stack([m*255]*3 + [np.full_like(m, 255)], -1)), '.png'),
    'LA':             (lambda m: Image.fromarray(m*255).convert('LA'), '.png'),
    '16-bit':         (lambda m: Image.fromarray(m.astype(np.uint16)*65535), '.png'),
    '32-bit':         (lambda m: Image.fromarray(m.astype(np.int32)*255), '.tif'),
    'palette':        (lambda m: Image.fromarray(m, 'P'), '.png'),
}

def _truths():
    "Three lesion masks (0/1): real isic-dev masks where available"
    dev = _isic_dev()
    if dev:
        return [(np.asarray(Image.open(f)) > 128).astype(np.uint8) for f in sorted((dev/'masks').glob('*.png'))[:3]]
    ms = []
    for k in range(3):
        m = np.zeros((48, 64), np.uint8); m[8 + 4*k:30, 10:40 - 3*k] = 1; ms.append(m)
    return ms

def _write(folder:Path, masks, kind:str):
    folder.mkdir(parents=True)
    to_img, ext = KINDS[kind]
    for i, m in enumerate(masks): to_img(m).save(folder/f'ISIC_000000{i}_segmentation{ext}')

def _ours(truth, pred):
    "Our scores (dict) or None where `evaluate` refuses (status 2)"
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err): rc = main(['evaluate', '--truth', str(truth), '--pred', str(pred), '--json'])
    assert rc in (0, 2) and 'Traceback' not in err.getvalue(), err.getvalue()
    return (json.loads(out.getvalue()), err.getvalue()) if rc == 0 else (None, err.getvalue())

def _theirs(truth, pred):
    "The official scorer's macro averages, or None where it refuses"
    try: return SegmentationScore.from_dir(truth, pred).macro_average.to_dict()
    except ScoreError: return None

@pytest.mark.parametrize('both', [False, True], ids=['prediction', 'truth and prediction'])
@pytest.mark.parametrize('kind', list(KINDS))
def test_evaluate_is_the_scorer(kind, both, tmp_path):
    truths = _truths()
    preds = [np.roll(m, 6, axis=1) for m in truths]                  # a shifted prediction: scores below 1
    _write(tmp_path/'truth', truths, kind if both else '0/255')
    _write(tmp_path/'pred', preds, kind)
    (ours, err), theirs = _ours(tmp_path/'truth', tmp_path/'pred'), _theirs(tmp_path/'truth', tmp_path/'pred')
    assert (ours is None) == (theirs is None), (kind, ours, theirs, err)
    if ours is None: assert 'the ISIC scorer refuses it' in err, err; return
    for k in METRICS: assert abs(ours[k] - theirs[k]) < 1e-9, (kind, k, ours[k], theirs[k])
    if kind in ('0/1', '0/100', 'grey ramp', 'greyscale JPEG', 'all lesion 200/255'):
        assert 'warning: ' in err and 'the ISIC scorer' in err, err     # a surprising reading is said
    if kind in ('0/255', '1-bit', '0/200'): assert 'warning' not in err, err

def test_same_file_scores_itself_perfectly(tmp_path):
    "A 0/100 file against itself: one rule for truth and prediction, so the same file gives the same reading"
    truths = _truths()
    _write(tmp_path/'truth', truths, '0/100'); _write(tmp_path/'pred', truths, '0/100')
    (ours, _), theirs = _ours(tmp_path/'truth', tmp_path/'pred'), _theirs(tmp_path/'truth', tmp_path/'pred')
    for k in METRICS: assert abs(ours[k] - theirs[k]) < 1e-9
